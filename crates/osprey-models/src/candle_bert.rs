//! BERT encoder on candle with padding-free packing: the linear layers run on all
//! tokens of a batch as one `[tokens, hidden]` matrix, and attention runs per group
//! of equal-length sequences, so no work is spent on padding.

use std::sync::Arc;

use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, IndexOp, Module, Tensor};
use candle_nn::LayerNorm;

use crate::{
    Backend, BackendKind, ModelDir, ModelError, Pooling, Result, Task, pool, weights_file,
};

/// A linear layer with its weight stored transposed (`[in, out]`, contiguous), so
/// the matrix multiply reads it in order instead of repacking it on every call.
struct Dense {
    weight_t: Tensor,
    bias: Tensor,
}

impl Dense {
    fn new(weight: &Tensor, bias: Tensor) -> Result<Self> {
        Ok(Self {
            weight_t: weight.t()?.contiguous()?,
            bias,
        })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.matmul(&self.weight_t)?.broadcast_add(&self.bias)
    }
}

struct Layer {
    qkv: Dense,
    attn_out: Dense,
    attn_norm: LayerNorm,
    intermediate: Dense,
    output: Dense,
    out_norm: LayerNorm,
}

struct Weights {
    word: Tensor,
    position: Tensor,
    /// `[types, hidden]`: row 0 for single texts, row 1 for a pair's second text.
    token_type: Tensor,
    token_type0: Tensor,
    emb_norm: LayerNorm,
    layers: Vec<Layer>,
    head: Option<Head>,
}

/// A sequence classifier's head: BERT's pooler (dense + tanh on the first token's
/// state), then one logit per label.
struct Head {
    pooler: Dense,
    classifier: Dense,
}

impl Head {
    fn load(t: &Tensors, labels: usize) -> Result<Self> {
        let pooler = t.dense("pooler.dense")?;
        let classifier = Dense::new(
            &t.get_raw("classifier.weight")?,
            t.get_raw("classifier.bias")?,
        )?;
        let (_, rows) = classifier.weight_t.dims2()?;
        if rows != labels {
            return Err(ModelError::Unsupported(format!(
                "the classifier has {rows} outputs but config.json names {labels} labels"
            )));
        }
        Ok(Self { pooler, classifier })
    }

    /// Logits `[n, labels]` from the first-token states `[n, hidden]`.
    fn forward(&self, cls: &Tensor) -> candle_core::Result<Tensor> {
        self.classifier.forward(&self.pooler.forward(cls)?.tanh()?)
    }
}

/// One replica: shared weights plus its own thread pool for intra-op parallelism.
pub struct CandleBert {
    weights: Arc<Weights>,
    pool: Arc<rayon::ThreadPool>,
    heads: usize,
    hidden: usize,
    pooling: Pooling,
}

struct Tensors {
    file: MmapedSafetensors,
    prefix: &'static str,
}

impl Tensors {
    fn get(&self, name: &str) -> Result<Tensor> {
        self.get_raw(&format!("{}{name}", self.prefix))
    }
    /// A tensor outside the encoder's prefix (a classifier's own weights).
    fn get_raw(&self, key: &str) -> Result<Tensor> {
        let t = self
            .file
            .load(key, &Device::Cpu)
            .map_err(|e| ModelError::Unsupported(format!("weights tensor `{key}`: {e}")))?;
        Ok(t.to_dtype(DType::F32)?)
    }
    fn dense(&self, name: &str) -> Result<Dense> {
        Dense::new(
            &self.get(&format!("{name}.weight"))?,
            self.get(&format!("{name}.bias"))?,
        )
    }
    fn norm(&self, name: &str, eps: f64) -> Result<LayerNorm> {
        Ok(LayerNorm::new(
            self.get(&format!("{name}.weight"))?,
            self.get(&format!("{name}.bias"))?,
            eps,
        ))
    }
}

/// Maps the weights file: each tensor is then copied once, straight from the page
/// cache, instead of reading the whole file into memory first.
#[allow(unsafe_code)]
fn map_weights(path: &std::path::Path) -> Result<MmapedSafetensors> {
    // SAFETY: the mapping lives only while the tensors are copied out of it (this
    // function's caller drops it before returning). Osprey never writes model files;
    // one rewritten by another program during those milliseconds is the same hazard
    // every memory-mapped model loader accepts.
    Ok(unsafe { MmapedSafetensors::new(path)? })
}

impl CandleBert {
    /// Loads `model.safetensors` once; the returned replicas share the weights.
    pub fn load(model: &ModelDir, replicas: usize, threads: usize) -> Result<Vec<Self>> {
        let cfg = &model.config;
        if !matches!(
            cfg.hidden_act.as_str(),
            "gelu" | "gelu_new" | "gelu_pytorch_tanh"
        ) {
            return Err(ModelError::Unsupported(format!(
                "activation `{}` (BERT-family models use gelu)",
                cfg.hidden_act
            )));
        }
        let path = weights_file(model, BackendKind::Candle, crate::Precision::Fp32)?;
        let file = map_weights(&path)?;
        let prefix = if file.get("embeddings.word_embeddings.weight").is_ok() {
            ""
        } else if file.get("bert.embeddings.word_embeddings.weight").is_ok() {
            "bert."
        } else {
            return Err(ModelError::Unsupported(
                "model.safetensors holds no BERT embeddings".into(),
            ));
        };
        let t = Tensors { file, prefix };
        let eps = cfg.layer_norm_eps;
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let p = format!("encoder.layer.{i}");
            let part = |n: &str, kind: &str| t.get(&format!("{p}.attention.self.{n}.{kind}"));
            // One fused [3H, H] projection instead of three matmuls.
            let qkv_w = Tensor::cat(
                &[
                    part("query", "weight")?,
                    part("key", "weight")?,
                    part("value", "weight")?,
                ],
                0,
            )?;
            let qkv_b = Tensor::cat(
                &[
                    part("query", "bias")?,
                    part("key", "bias")?,
                    part("value", "bias")?,
                ],
                0,
            )?;
            layers.push(Layer {
                qkv: Dense::new(&qkv_w, qkv_b)?,
                attn_out: t.dense(&format!("{p}.attention.output.dense"))?,
                attn_norm: t.norm(&format!("{p}.attention.output.LayerNorm"), eps)?,
                intermediate: t.dense(&format!("{p}.intermediate.dense"))?,
                output: t.dense(&format!("{p}.output.dense"))?,
                out_norm: t.norm(&format!("{p}.output.LayerNorm"), eps)?,
            });
        }
        let token_type = t.get("embeddings.token_type_embeddings.weight")?;
        let head = match model.task {
            Task::Classify | Task::Rerank => Some(Head::load(&t, model.labels.len())?),
            Task::Embed | Task::Tensor | Task::Generate => None,
        };
        let weights = Arc::new(Weights {
            word: t.get("embeddings.word_embeddings.weight")?,
            position: t.get("embeddings.position_embeddings.weight")?,
            token_type0: token_type.i(0)?,
            token_type,
            emb_norm: t.norm("embeddings.LayerNorm", eps)?,
            layers,
            head,
        });
        check_embeddings(model, &weights)?;
        (0..replicas.max(1))
            .map(|i| {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads.max(1))
                    .thread_name(move |t| format!("osprey-candle-{i}-{t}"))
                    .build()?;
                Ok(Self {
                    weights: weights.clone(),
                    pool: Arc::new(pool),
                    heads: cfg.num_attention_heads,
                    hidden: cfg.hidden_size,
                    pooling: model.pooling,
                })
            })
            .collect()
    }

    /// Token states `[sum(len), hidden]` for sequences sorted by length.
    fn forward(&self, seqs: &[&[u32]], second: &[Option<usize>]) -> Result<Tensor> {
        let w = &*self.weights;
        let total: usize = seqs.iter().map(|s| s.len()).sum();
        let mut ids = Vec::with_capacity(total);
        let mut positions = Vec::with_capacity(total);
        for s in seqs {
            ids.extend_from_slice(s);
            positions.extend(0..s.len() as u32);
        }
        let dev = Device::Cpu;
        let ids = Tensor::from_vec(ids, total, &dev)?;
        let positions = Tensor::from_vec(positions, total, &dev)?;
        let x = w
            .word
            .index_select(&ids, 0)?
            .add(&w.position.index_select(&positions, 0)?)?;
        // Single texts (the common case) all take row 0: one broadcast add.
        let x = if second.iter().all(Option::is_none) {
            x.broadcast_add(&w.token_type0)?
        } else {
            let types: Vec<u32> = seqs
                .iter()
                .zip(second)
                .flat_map(|(s, from)| {
                    let from = from.unwrap_or(s.len());
                    (0..s.len()).map(move |j| u32::from(j >= from))
                })
                .collect();
            let types = Tensor::from_vec(types, total, &dev)?;
            x.add(&w.token_type.index_select(&types, 0)?)?
        };
        let mut x = w.emb_norm.forward(&x)?;

        // Runs of equal length: (first token, sequences, length).
        let mut groups: Vec<(usize, usize, usize)> = Vec::new();
        let mut offset = 0;
        for s in seqs {
            match groups.last_mut() {
                Some((_, count, len)) if *len == s.len() => *count += 1,
                _ => groups.push((offset, 1, s.len())),
            }
            offset += s.len();
        }
        let head_dim = self.hidden / self.heads;
        let scale = 1.0 / (head_dim as f64).sqrt();
        for layer in &w.layers {
            let qkv = layer.qkv.forward(&x)?;
            let mut parts = Vec::with_capacity(groups.len());
            for &(start, count, len) in &groups {
                let g = qkv
                    .narrow(0, start, count * len)?
                    .reshape((count, len, 3, self.heads, head_dim))?;
                let q = g.i((.., .., 0))?.transpose(1, 2)?.contiguous()?;
                let k = g.i((.., .., 1))?.transpose(1, 2)?.contiguous()?;
                let v = g.i((.., .., 2))?.transpose(1, 2)?.contiguous()?;
                let scores = (q.matmul(&k.t()?)? * scale)?;
                let probs = candle_nn::ops::softmax_last_dim(&scores)?;
                let out = probs
                    .matmul(&v)?
                    .transpose(1, 2)?
                    .reshape((count * len, self.hidden))?;
                parts.push(out);
            }
            let attn = if parts.len() == 1 {
                parts.pop().unwrap_or(qkv)
            } else {
                Tensor::cat(&parts, 0)?
            };
            let x1 = layer
                .attn_norm
                .forward(&layer.attn_out.forward(&attn)?.add(&x)?)?;
            let h = crate::gelu::gelu_erf(&layer.intermediate.forward(&x1)?)?;
            x = layer
                .out_norm
                .forward(&layer.output.forward(&h)?.add(&x1)?)?;
        }
        Ok(x)
    }
}

/// Each sequence's logits, from its first token's state.
fn classify(head: &Head, states: &Tensor, seqs: &[&[u32]]) -> Result<Vec<Vec<f32>>> {
    let mut first = Vec::with_capacity(seqs.len());
    let mut row = 0u32;
    for s in seqs {
        first.push(row);
        row += s.len() as u32;
    }
    let n = first.len();
    let first = Tensor::from_vec(first, n, &Device::Cpu)?;
    let logits = head.forward(&states.index_select(&first, 0)?)?;
    Ok(logits.to_vec2::<f32>()?)
}

/// The config must describe the weights: a wrong `hidden_size` would misread every
/// row, and too few position rows would index past the table.
fn check_embeddings(model: &ModelDir, w: &Weights) -> Result<()> {
    let invalid = |message: String| ModelError::InvalidConfig {
        path: model.file("config.json"),
        message,
    };
    let (_, width) = w.word.dims2()?;
    if width != model.config.hidden_size {
        return Err(invalid(format!(
            "hidden_size is {} but the weights' embeddings are {width} wide",
            model.config.hidden_size
        )));
    }
    let (positions, _) = w.position.dims2()?;
    if positions < model.max_seq_length {
        return Err(invalid(format!(
            "sequences of {} tokens need as many position embeddings; the weights hold {positions}",
            model.max_seq_length
        )));
    }
    Ok(())
}

impl Backend for CandleBert {
    fn name(&self) -> &'static str {
        "candle"
    }

    fn embed(&mut self, seqs: &[&[u32]]) -> Result<Vec<Vec<f32>>> {
        self.embed_segments(seqs, &vec![None; seqs.len()])
    }

    fn embed_segments(
        &mut self,
        seqs: &[&[u32]],
        second: &[Option<usize>],
    ) -> Result<Vec<Vec<f32>>> {
        if seqs.is_empty() {
            return Ok(Vec::new());
        }
        // Equal lengths must be adjacent for grouped attention; keep the caller's order
        // for the answer.
        let mut order: Vec<usize> = (0..seqs.len()).collect();
        order.sort_by_key(|&i| seqs[i].len());
        let sorted: Vec<&[u32]> = order.iter().map(|&i| seqs[i]).collect();
        let seconds: Vec<Option<usize>> = order
            .iter()
            .map(|&i| second.get(i).copied().flatten())
            .collect();
        let states = self.pool.install(|| self.forward(&sorted, &seconds))?;
        let sorted_out = match &self.weights.head {
            Some(head) => self.pool.install(|| classify(head, &states, &sorted))?,
            None => {
                let flat = states.flatten_all()?.to_vec1::<f32>()?;
                let mut rows = Vec::with_capacity(sorted.len());
                let mut row = 0;
                for s in &sorted {
                    rows.push(pool(
                        &flat[row * self.hidden..],
                        self.hidden,
                        s.len(),
                        self.pooling,
                    ));
                    row += s.len();
                }
                rows
            }
        };
        let mut out = vec![Vec::new(); seqs.len()];
        for (&i, v) in order.iter().zip(sorted_out) {
            out[i] = v;
        }
        Ok(out)
    }
}
