use std::time::Instant;

use super::*;

fn rev(dir: &Path, weights: &Path) -> String {
    revision_of(dir, weights).expect("revision")
}

#[test]
fn config_header_and_size_changes_change_the_revision() {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("config.json"), b"{}").expect("config");
    let weights = dir.path().join("w.bin");
    let mut data = vec![7u8; 5 * 1024 * 1024];
    std::fs::write(&weights, &data).expect("weights");
    let a = rev(dir.path(), &weights);
    assert_eq!(a, rev(dir.path(), &weights), "stable");
    data[0] = 8; // header byte
    std::fs::write(&weights, &data).expect("weights");
    let b = rev(dir.path(), &weights);
    assert_ne!(a, b);
    std::fs::write(dir.path().join("config.json"), b"{\"x\":1}").expect("config");
    assert_ne!(b, rev(dir.path(), &weights));
    data.push(0); // size
    std::fs::write(&weights, &data).expect("weights");
    assert_ne!(b, rev(dir.path(), &weights));
}

#[test]
fn every_byte_of_the_weights_counts() {
    let dir = tempfile::tempdir().expect("dir");
    let weights = dir.path().join("w.bin");
    let mut data = vec![7u8; 5 * 1024 * 1024 + 3];
    std::fs::write(&weights, &data).expect("weights");
    let base = rev(dir.path(), &weights);
    // Bytes between where a sampler would look, and the very last one.
    for at in [16 * 1024 + 10, 2 * 1024 * 1024 + 77_777, data.len() - 1] {
        data[at] ^= 1;
        std::fs::write(&weights, &data).expect("weights");
        assert_ne!(base, rev(dir.path(), &weights), "byte {at}");
        data[at] ^= 1;
    }
    std::fs::write(&weights, &data).expect("weights");
    assert_eq!(base, rev(dir.path(), &weights), "restored");
}

#[test]
fn onnx_external_data_counts() {
    let dir = tempfile::tempdir().expect("dir");
    let graph = dir.path().join("model.onnx");
    std::fs::write(&graph, b"graph").expect("graph");
    let alone = rev(dir.path(), &graph);
    let data = dir.path().join("model.onnx_data");
    std::fs::write(&data, b"weights a").expect("data");
    let with_a = rev(dir.path(), &graph);
    std::fs::write(&data, b"weights b").expect("data");
    let with_b = rev(dir.path(), &graph);
    assert_ne!(alone, with_a);
    assert_ne!(with_a, with_b);
}

/// A tensor's byte range in a safetensors file (absolute offsets).
fn tensors(file: &[u8]) -> Vec<(String, usize, usize)> {
    let n = u64::from_le_bytes(file[..8].try_into().expect("8 bytes")) as usize;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&file[8..8 + n]).expect("header");
    header
        .into_iter()
        .filter(|(k, _)| k != "__metadata__")
        .map(|(name, t)| {
            let o = &t["data_offsets"];
            let start = o[0].as_u64().expect("start") as usize;
            let end = o[1].as_u64().expect("end") as usize;
            (name, 8 + n + start, 8 + n + end)
        })
        .collect()
}

/// Whether the sampler of earlier builds (256 blocks of 16 KiB spread evenly)
/// read byte `at` of a file of `len` bytes.
fn sampled(at: usize, len: usize) -> bool {
    let stride = (len / 256).max(16 * 1024);
    at % stride < 16 * 1024
}

#[test]
fn an_edit_to_one_small_tensor_of_the_real_model_changes_the_revision() {
    let model = crate::testkit::model_dir();
    let original = model.join("model.safetensors");
    let mut bytes = std::fs::read(&original).expect("the test model's weights");
    let dir = tempfile::tempdir().expect("dir");
    for name in FILES {
        let from = model.join(name);
        if from.is_file() {
            let to = dir.path().join(name);
            std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
            std::fs::copy(&from, &to).expect("copy");
        }
    }
    let weights = dir.path().join("model.safetensors");
    std::fs::write(&weights, &bytes).expect("copy weights");

    let t = Instant::now();
    let before = rev(dir.path(), &weights);
    let took = t.elapsed();
    eprintln!("full revision hash of {} bytes: {took:?}", bytes.len());
    assert_eq!(
        before,
        rev(&model, &original),
        "a copy has the same revision"
    );
    assert!(took.as_secs_f64() < 2.0, "hashing took {took:?}");

    // The last small tensor (a bias or norm) whose middle no sampled block read.
    let mut small: Vec<_> = tensors(&bytes)
        .into_iter()
        .filter(|(_, s, e)| e - s <= 64 * 1024)
        .collect();
    small.sort_by_key(|(_, s, _)| *s);
    let (name, at) = small
        .iter()
        .rev()
        .map(|(name, s, e)| (name, s + (e - s) / 2))
        .find(|(_, at)| !sampled(*at, bytes.len()))
        .expect("a small tensor outside the sampled blocks");
    bytes[at] ^= 0x40;
    bytes[at + 1] ^= 0x01;
    std::fs::write(&weights, &bytes).expect("edited weights");
    assert_ne!(before, rev(dir.path(), &weights), "edit in {name} at {at}");
}
