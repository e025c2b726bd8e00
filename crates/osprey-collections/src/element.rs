//! What the graph stores for each vector component, and how two stored vectors
//! are compared: float32, float16 (half the bytes), or int8 codes
//! (`round(x × scale)`, saturated at ±127).
//!
//! Distances follow one convention for every type, so the index turns them into
//! scores in one place: one minus the dot product for Cosine and Dot (vectors
//! arrive normalized for Cosine), the squared distance for Euclid. On int8 codes
//! these are computed on the integers, which rank as the vectors do.

use half::f16;
use half::slice::HalfFloatSliceExt;

use crate::kernel;

pub(crate) trait Element: Copy + Default + Send + Sync + 'static {
    /// The tag saved with a graph, so a file is only read back as its type.
    const TAG: u8;
    /// Bytes per component in a saved graph.
    const BYTES: usize;

    /// `v` in this type; `scale` is the int8 scale (ignored otherwise).
    fn encode(v: &[f32], scale: f32, out: &mut Vec<Self>);
    /// Back to float32 units (`out` has `v`'s length).
    fn decode(v: &[Self], scale: f32, out: &mut [f32]);
    fn dot(a: &[Self], b: &[Self]) -> f32;
    fn l2_squared(a: &[Self], b: &[Self]) -> f32;
    fn to_le(self, out: &mut Vec<u8>);
    /// From exactly [`Element::BYTES`] little-endian bytes.
    fn from_le(bytes: &[u8]) -> Self;
}

impl Element for f32 {
    const TAG: u8 = 0;
    const BYTES: usize = 4;

    fn encode(v: &[f32], _: f32, out: &mut Vec<Self>) {
        out.clear();
        out.extend_from_slice(v);
    }
    fn decode(v: &[Self], _: f32, out: &mut [f32]) {
        out.copy_from_slice(v);
    }
    fn dot(a: &[Self], b: &[Self]) -> f32 {
        kernel::dot(a, b)
    }
    fn l2_squared(a: &[Self], b: &[Self]) -> f32 {
        kernel::l2_squared(a, b)
    }
    fn to_le(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    fn from_le(bytes: &[u8]) -> Self {
        let mut b = [0u8; 4];
        b.copy_from_slice(bytes);
        f32::from_le_bytes(b)
    }
}

impl Element for f16 {
    const TAG: u8 = 1;
    const BYTES: usize = 2;

    fn encode(v: &[f32], _: f32, out: &mut Vec<Self>) {
        out.clear();
        out.resize(v.len(), f16::ZERO);
        out.convert_from_f32_slice(v);
    }
    fn decode(v: &[Self], _: f32, out: &mut [f32]) {
        v.convert_to_f32_slice(out);
    }
    fn dot(a: &[Self], b: &[Self]) -> f32 {
        kernel::dot_f16(a.reinterpret_cast(), b.reinterpret_cast())
    }
    fn l2_squared(a: &[Self], b: &[Self]) -> f32 {
        kernel::l2_squared_f16(a.reinterpret_cast(), b.reinterpret_cast())
    }
    fn to_le(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    fn from_le(bytes: &[u8]) -> Self {
        f16::from_le_bytes([bytes[0], bytes[1]])
    }
}

impl Element for i8 {
    const TAG: u8 = 2;
    const BYTES: usize = 1;

    fn encode(v: &[f32], scale: f32, out: &mut Vec<Self>) {
        out.clear();
        // The clamp saturates; `as` maps what is left exactly.
        out.extend(
            v.iter()
                .map(|x| (x * scale).round().clamp(-127.0, 127.0) as i8),
        );
    }
    fn decode(v: &[Self], scale: f32, out: &mut [f32]) {
        for (o, c) in out.iter_mut().zip(v) {
            *o = f32::from(*c) / scale;
        }
    }
    fn dot(a: &[Self], b: &[Self]) -> f32 {
        i8_sum(a, b, |x, y| x * y)
    }
    fn l2_squared(a: &[Self], b: &[Self]) -> f32 {
        i8_sum(a, b, |x, y| (x - y) * (x - y))
    }
    fn to_le(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    fn from_le(bytes: &[u8]) -> Self {
        i8::from_le_bytes([bytes[0]])
    }
}

/// Components of int8 codes summed in i32: a term is at most 254² (a squared
/// difference), and 254² × 32,768 < 2³¹, so no chunk's sum can overflow.
const I8_CHUNK: usize = 32_768;

/// The sum of `term` over the pairs of components, exact in i32 within each
/// chunk (the loop vectorizes as is).
#[inline(always)]
fn i8_sum(a: &[i8], b: &[i8], term: impl Fn(i32, i32) -> i32) -> f32 {
    a.chunks(I8_CHUNK)
        .zip(b.chunks(I8_CHUNK))
        .map(|(ca, cb)| {
            let s: i32 = ca
                .iter()
                .zip(cb)
                .map(|(x, y)| term(i32::from(*x), i32::from(*y)))
                .sum();
            s as f32
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::tests::reference;

    #[test]
    fn float16_distances_match_float64_sums_of_the_rounded_vectors() {
        for n in [1, 7, 127, 128, 129, 384, 1000] {
            let a: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos()).collect();
            let (mut ha, mut hb) = (Vec::new(), Vec::new());
            f16::encode(&a, 1.0, &mut ha);
            f16::encode(&b, 1.0, &mut hb);
            let ra: Vec<f32> = ha.iter().map(|x| x.to_f32()).collect();
            let rb: Vec<f32> = hb.iter().map(|x| x.to_f32()).collect();
            let (dot, l2) = reference(&ra, &rb);
            let tol = 1e-5 * (1.0 + n as f64);
            assert!(
                (f64::from(f16::dot(&ha, &hb)) - dot).abs() < tol,
                "dot at {n}"
            );
            assert!(
                (f64::from(f16::l2_squared(&ha, &hb)) - l2).abs() < tol,
                "l2 at {n}"
            );
        }
    }

    #[test]
    fn int8_codes_saturate_and_compare_exactly() {
        let mut c = Vec::new();
        i8::encode(&[0.5, -2.0, 10.0, -0.004], 100.0, &mut c);
        assert_eq!(c, vec![50, -127, 127, 0]);
        let b = [1i8, 2, -3, 4];
        assert_eq!(i8::dot(&c, &b), (50 - 254 - 381) as f32);
        assert_eq!(
            i8::l2_squared(&c, &b),
            (49 * 49 + 129 * 129 + 130 * 130 + 16) as f32
        );
        // Sums past what one i32 holds (127² × 140,000 > 2³¹).
        let long = vec![127i8; 140_000];
        let want = 127.0 * 127.0 * 140_000.0;
        assert!((f64::from(i8::dot(&long, &long)) - want).abs() < want * 1e-6);
        let low = vec![-127i8; 140_000];
        let want = 254.0 * 254.0 * 140_000.0;
        assert!((f64::from(i8::l2_squared(&long, &low)) - want).abs() < want * 1e-6);
        let mut back = [0f32; 4];
        i8::decode(&c, 100.0, &mut back);
        assert_eq!(back, [0.5, -1.27, 1.27, 0.0]);
    }
}
