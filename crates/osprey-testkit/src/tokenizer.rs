//! A small BERT-style tokenizer built in memory: one token per character (every
//! printable ASCII character and its `##` continuation), BERT's normalizer,
//! pre-tokenizer and `[CLS] … [SEP]` template, so nothing is read from disk.

use std::collections::HashMap;

use osprey_engine::{EngineError, TextTokenizer};
use tokenizers::Tokenizer;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::bert::BertProcessing;

pub fn fake_tokenizer(max_len: usize) -> Result<TextTokenizer, EngineError> {
    let mut vocab: HashMap<String, u32> = HashMap::new();
    for special in ["[PAD]", "[UNK]", "[CLS]", "[SEP]"] {
        let id = vocab.len() as u32;
        vocab.insert(special.into(), id);
    }
    for c in (b' '..=b'~').map(char::from).filter(|c| !c.is_whitespace()) {
        for piece in [c.to_string(), format!("##{c}")] {
            let id = vocab.len() as u32;
            vocab.entry(piece).or_insert(id);
        }
    }
    let cls = vocab.get("[CLS]").copied().unwrap_or(2);
    let sep = vocab.get("[SEP]").copied().unwrap_or(3);
    let model = WordPiece::builder()
        // The library's own map type (the same for every model), by its public name.
        .vocab(
            vocab
                .into_iter()
                .collect::<tokenizers::models::bpe::Vocab>(),
        )
        .unk_token("[UNK]".into())
        .max_input_chars_per_word(1000)
        .build()
        .map_err(|e| EngineError::Backend(e.to_string()))?;
    let mut tok = Tokenizer::new(model);
    tok.with_normalizer(Some(BertNormalizer::default()))
        .map_err(|e| EngineError::Backend(e.to_string()))?;
    tok.with_pre_tokenizer(Some(BertPreTokenizer));
    tok.with_post_processor(Some(BertProcessing::new(
        ("[SEP]".into(), sep),
        ("[CLS]".into(), cls),
    )));
    Ok(TextTokenizer::new(tok, max_len)?)
}
