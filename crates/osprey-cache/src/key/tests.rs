use proptest::prelude::*;

use super::*;

fn space() -> KeySpace {
    KeySpace::new("all-MiniLM-L6-v2", "rev1")
        .option("normalize", true)
        .option("truncate", true)
}

proptest! {
    #[test]
    fn same_inputs_same_key(text in ".*") {
        prop_assert_eq!(space().key(&text), space().key(&text));
    }

    #[test]
    fn different_texts_different_keys(a in ".*", b in ".*") {
        prop_assume!(a != b);
        prop_assert_ne!(space().key(&a), space().key(&b));
    }

    #[test]
    fn every_field_changes_the_key(text in ".{0,64}", model in "[a-z]{1,8}", rev in "[0-9a-f]{1,8}") {
        let base = KeySpace::new(&model, &rev).option("normalize", true).key(&text);
        prop_assert_ne!(base, KeySpace::new(&format!("{model}x"), &rev).option("normalize", true).key(&text));
        prop_assert_ne!(base, KeySpace::new(&model, &format!("{rev}0")).option("normalize", true).key(&text));
        prop_assert_ne!(base, KeySpace::new(&model, &rev).option("normalize", false).key(&text));
        prop_assert_ne!(base, KeySpace::new(&model, &rev).key(&text));
    }

    #[test]
    fn boundaries_between_fields_matter(a in "[a-z]{0,6}", b in "[a-z]{0,6}") {
        // Moving bytes from the model id into the revision must change the key.
        let joined = format!("{a}{b}");
        prop_assume!(!b.is_empty());
        prop_assert_ne!(
            KeySpace::new(&joined, "").key("t"),
            KeySpace::new(&a, &b).key("t")
        );
    }
}

#[test]
fn text_cannot_pose_as_an_option() {
    let a = KeySpace::new("m", "r").option("dimensions", 64).key("x");
    let b = KeySpace::new("m", "r").key("x");
    assert_ne!(a, b);
}

#[test]
fn debug_shows_the_first_eight_bytes_in_hex() {
    let mut bytes = [0xee; 32];
    bytes[..8].copy_from_slice(&[0x00, 0x01, 0x0a, 0x10, 0x7f, 0x80, 0xab, 0xff]);
    assert_eq!(format!("{:?}", CacheKey(bytes)), "00010a107f80abff…");
}

#[test]
fn callers_have_keys_of_their_own() {
    let shared = space().key("x");
    let a = space().caller(b"a").key("x");
    let b = space().caller(b"b").key("x");
    assert_ne!(a, b);
    assert_ne!(a, shared);
    assert_eq!(a, space().caller(b"a").key("x"));
    // The caller is length-prefixed like every field.
    assert_ne!(
        space().caller(b"ab").key("x"),
        space().caller(b"a").key("bx")
    );
}
