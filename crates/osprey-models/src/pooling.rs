//! Pooling of token states into one vector, shared by every backend.

use crate::Pooling;

/// Pools `len` rows of `hidden` floats (row-major, real tokens only, padding excluded).
pub fn pool(rows: &[f32], hidden: usize, len: usize, mode: Pooling) -> Vec<f32> {
    let rows = &rows[..len * hidden];
    if len == 0 {
        return vec![0.0; hidden];
    }
    match mode {
        Pooling::Cls => rows[..hidden].to_vec(),
        Pooling::LastToken => rows[(len - 1) * hidden..].to_vec(),
        Pooling::Max => {
            let mut out = rows[..hidden].to_vec();
            for row in rows.chunks_exact(hidden).skip(1) {
                for (o, v) in out.iter_mut().zip(row) {
                    *o = o.max(*v);
                }
            }
            out
        }
        Pooling::Mean | Pooling::MeanSqrtLen => {
            let mut sum = vec![0.0f32; hidden];
            for row in rows.chunks_exact(hidden) {
                for (s, v) in sum.iter_mut().zip(row) {
                    *s += v;
                }
            }
            let div = if mode == Pooling::Mean {
                len as f32
            } else {
                (len as f32).sqrt()
            };
            sum.iter_mut().for_each(|s| *s /= div);
            sum
        }
    }
}

/// Scales `v` to unit L2 norm; a zero vector stays zero.
pub fn l2_normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 1e-12 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}
