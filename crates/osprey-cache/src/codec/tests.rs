use proptest::prelude::*;

use super::*;

proptest! {
    #[test]
    fn round_trips(vector in proptest::collection::vec(any::<f32>(), 0..600), tokens in any::<u32>()) {
        let entry = Entry::new(vector.clone(), tokens);
        let back = decode(&encode(&entry)).expect("decodes");
        prop_assert_eq!(back.tokens, tokens);
        // Compare bits: NaN payloads must survive too.
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        prop_assert_eq!(bits(&back.vector), bits(&vector));
    }

    #[test]
    fn any_single_byte_flip_is_caught(vector in proptest::collection::vec(-1.0f32..1.0, 1..64), at in any::<prop::sample::Index>(), bit in 0u8..8) {
        let mut bytes = encode(&Entry::new(vector, 7));
        let i = at.index(bytes.len());
        bytes[i] ^= 1 << bit;
        prop_assert!(decode(&bytes).is_err());
    }

    #[test]
    fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode(&bytes);
    }
}

#[test]
fn compresses_only_when_it_pays() {
    // Repetitive vectors shrink a lot: stored compressed.
    let flat = encode(&Entry::new(vec![0.5f32; 384], 3));
    assert_eq!(flat[1], FLAG_ZSTD);
    assert!(flat.len() < 384 * 4 / 2);
    // Typical embeddings barely compress: stored raw.
    let noisy: Vec<f32> = (0..384).map(|i| ((i * 7919) as f32).sin() * 0.1).collect();
    let raw = encode(&Entry::new(noisy.clone(), 3));
    assert_eq!(raw[1], 0);
    assert_eq!(
        decode(&raw).expect("decodes").vector.as_ref(),
        noisy.as_slice()
    );
}

#[test]
fn other_versions_are_refused() {
    let mut bytes = encode(&Entry::new(vec![1.0], 1));
    bytes[0] = 2;
    assert!(matches!(decode(&bytes), Err(CacheError::Version(2, 1))));
}
