//! Tokenization with Osprey's rules on top of the shipped `tokenizer.json`: no
//! padding (the batcher packs or pads per batch) and truncation at the model's own
//! maximum sequence length, whatever the file says.

use std::path::Path;
use std::sync::{Arc, Mutex, Weak};

use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::utils::truncation::truncate_encodings;
use tokenizers::{
    Encoding, PostProcessor, Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy,
};

use crate::{ModelError, Result};

/// Token ids of one input, ready for a backend.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Encoded {
    pub ids: Vec<u32>,
    /// Whether the input was cut to the maximum length.
    pub truncated: bool,
    /// For a text pair, where the second text's tokens (token type 1) begin.
    pub second: Option<usize>,
}

/// One token of a text, with where it came from (byte offsets); special tokens
/// have no place in the text.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Token {
    pub id: u32,
    pub text: String,
    pub special: bool,
    pub start: Option<usize>,
    pub stop: Option<usize>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenizeError {
    #[error("input has {tokens} tokens, more than the model's maximum of {max}")]
    TooLong { tokens: usize, max: usize },
    #[error("tokenizer failed: {0}")]
    Failed(String),
}

pub struct TextTokenizer {
    /// Untruncated and unpadded: Osprey cuts each encoding itself, so models with
    /// different maximum lengths share one tokenizer.
    whole: Arc<Tokenizer>,
    max_len: usize,
    /// Where a text may be cut with its tokens staying the first tokens of the
    /// whole text; `None` when the tokenizer gives no such place.
    cuts: Option<Cuts>,
}

/// Places a word-splitting pre-tokenizer never joins across.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cuts {
    /// Before whitespace.
    Whitespace,
    /// BERT's: also before ASCII punctuation and CJK ideographs, which BERT's
    /// normalizer and pre-tokenizer always split off.
    Bert,
}

impl Cuts {
    fn allows(self, c: char) -> bool {
        c.is_whitespace() || (self == Self::Bert && (c.is_ascii_punctuation() || is_cjk(c)))
    }
}

/// The CJK ideograph blocks BERT's normalizer splits off as words of their own.
fn is_cjk(c: char) -> bool {
    matches!(u32::from(c),
        0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0x20000..=0x2A6DF | 0x2A700..=0x2B73F
        | 0x2B740..=0x2B81F | 0x2B820..=0x2CEAF | 0xF900..=0xFAFF | 0x2F800..=0x2FA1F)
}

/// Bytes of text tried per token the model takes before tokenizing the rest: about
/// twice what English needs, so one try is enough for ordinary text.
const PREFIX_BYTES_PER_TOKEN: usize = 8;

impl TextTokenizer {
    /// Loads `tokenizer.json`. Models whose tokenizers are the same (their
    /// truncation and padding settings aside) share one copy in memory, about 7 MB
    /// for a BERT vocabulary.
    pub fn load(path: &Path, max_len: usize) -> Result<Self> {
        let failed = |e: String| ModelError::Tokenizer(format!("{}: {e}", path.display()));
        let mut t = Tokenizer::from_file(path).map_err(|e| failed(e.to_string()))?;
        untruncated(&mut t)?;
        let json = t.to_string(false).map_err(|e| failed(e.to_string()))?;
        let whole = shared(*blake3::hash(json.as_bytes()).as_bytes(), t);
        Ok(Self::from_parts(whole, max_len))
    }

    /// Osprey's rules on top of any tokenizer.
    pub fn new(mut whole: Tokenizer, max_len: usize) -> Result<Self> {
        untruncated(&mut whole)?;
        Ok(Self::from_parts(Arc::new(whole), max_len))
    }

    fn from_parts(whole: Arc<Tokenizer>, max_len: usize) -> Self {
        let cuts = match whole.get_pre_tokenizer() {
            Some(PreTokenizerWrapper::BertPreTokenizer(_)) => Some(Cuts::Bert),
            Some(PreTokenizerWrapper::Whitespace(_) | PreTokenizerWrapper::WhitespaceSplit(_)) => {
                Some(Cuts::Whitespace)
            }
            _ => None,
        };
        Self {
            whole,
            max_len,
            cuts,
        }
    }

    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Encodes one text with special tokens. Over the maximum length it is cut when
    /// `truncate` holds, and refused with the full token count otherwise.
    ///
    /// A long text is tokenized only as far as the model can use: a prefix cut
    /// between words, grown until its tokens overflow the maximum (its first tokens
    /// are then the whole text's) or it is the whole text. Tokenizer work per input
    /// is so bounded by the model's window, not by the text's length.
    pub fn encode(&self, text: &str, truncate: bool) -> Result<Encoded, TokenizeError> {
        let mut budget = self.max_len.saturating_mul(PREFIX_BYTES_PER_TOKEN);
        let room = self.room(false);
        let enc = loop {
            let part = self.prefix(text, budget);
            let enc = self.bare(part)?;
            if enc.len() > room || part.len() == text.len() {
                break enc;
            }
            budget = budget.saturating_mul(4);
        };
        let (enc, truncated) = self.finish(enc, None, true)?;
        if truncated && !truncate {
            // Only this error path pays for a second, untruncated encoding.
            let tokens = self
                .whole
                .encode_fast(text, true)
                .map_err(|e| TokenizeError::Failed(e.to_string()))?
                .len();
            return Err(TokenizeError::TooLong {
                tokens,
                max: self.max_len,
            });
        }
        Ok(Encoded {
            ids: enc.get_ids().to_vec(),
            truncated,
            second: None,
        })
    }

    /// Encodes a text pair (`[CLS] a [SEP] b [SEP]` for BERT) with the rules of
    /// [`TextTokenizer::encode`]; over the maximum, the longer text loses tokens first.
    pub fn encode_pair(&self, a: &str, b: &str, truncate: bool) -> Result<Encoded, TokenizeError> {
        let failed = |e: tokenizers::Error| TokenizeError::Failed(e.to_string());
        let mut budget = self.max_len.saturating_mul(PREFIX_BYTES_PER_TOKEN);
        let (ea, eb) = loop {
            let (pa, pb) = (self.prefix(a, budget), self.prefix(b, budget));
            let (ea, eb) = (self.bare(pa)?, self.bare(pb)?);
            // A cut text must hold a whole window of tokens: truncation then keeps
            // exactly the tokens it would keep of the whole text.
            let enough = |part: &str, text: &str, e: &Encoding| {
                part.len() == text.len() || e.len() >= self.max_len
            };
            if enough(pa, a, &ea) && enough(pb, b, &eb) {
                break (ea, eb);
            }
            budget = budget.saturating_mul(4);
        };
        let (enc, truncated) = self.finish(ea, Some(eb), true)?;
        if truncated && !truncate {
            let tokens = self.whole.encode_fast((a, b), true).map_err(failed)?.len();
            return Err(TokenizeError::TooLong {
                tokens,
                max: self.max_len,
            });
        }
        Ok(Encoded {
            truncated,
            second: enc.get_type_ids().iter().position(|&t| t == 1),
            ids: enc.get_ids().to_vec(),
        })
    }

    /// The whole of `text` as windows the model can take, for inputs longer than
    /// its maximum: each window is up to `max_len - specials` of the text's tokens
    /// between the tokenizer's special tokens, and each starts `overlap` tokens
    /// before the previous one ends. A text that fits is one window.
    pub fn windows(&self, text: &str, overlap: usize) -> Result<Vec<Vec<u32>>, TokenizeError> {
        let enc = self
            .whole
            .encode_fast(text, true)
            .map_err(|e| TokenizeError::Failed(e.to_string()))?;
        let ids = enc.get_ids();
        if ids.len() <= self.max_len {
            return Ok(vec![ids.to_vec()]);
        }
        let special = enc.get_special_tokens_mask();
        let lead = special.iter().take_while(|&&s| s == 1).count();
        let trail = special
            .iter()
            .rev()
            .take_while(|&&s| s == 1)
            .count()
            .min(ids.len() - lead);
        let (head, content, tail) = (
            &ids[..lead],
            &ids[lead..ids.len() - trail],
            &ids[ids.len() - trail..],
        );
        let width = self.max_len.saturating_sub(lead + trail).max(1);
        let stride = width.saturating_sub(overlap).max(1);
        let mut out = Vec::new();
        let mut start = 0;
        loop {
            let end = (start + width).min(content.len());
            let mut w = Vec::with_capacity(lead + (end - start) + trail);
            w.extend_from_slice(head);
            w.extend_from_slice(&content[start..end]);
            w.extend_from_slice(tail);
            out.push(w);
            if end == content.len() {
                return Ok(out);
            }
            start += stride;
        }
    }

    /// The tokens of `text` as the model would see them (cut at its maximum
    /// length), each with its place in the text: what `/tokenize` shows.
    pub fn tokens(&self, text: &str, add_special: bool) -> Result<Vec<Token>, TokenizeError> {
        // A window's worth of text is all a token list can show.
        let part = self.prefix(
            text,
            self.max_len.saturating_mul(PREFIX_BYTES_PER_TOKEN * 4),
        );
        let enc = self
            .whole
            .encode(part, false)
            .map_err(|e| TokenizeError::Failed(e.to_string()))?;
        let (enc, _) = self.finish(enc, None, add_special)?;
        let special = enc.get_special_tokens_mask();
        Ok(enc
            .get_ids()
            .iter()
            .zip(enc.get_tokens())
            .zip(enc.get_offsets())
            .enumerate()
            .map(|(i, ((&id, token), &(start, stop)))| {
                let special = special.get(i).is_some_and(|&s| s == 1);
                let within = (!special).then(|| part.get(start..stop)).flatten();
                Token {
                    id,
                    text: within.unwrap_or(token).to_owned(),
                    special,
                    start: within.map(|_| start),
                    stop: within.map(|_| stop),
                }
            })
            .collect())
    }

    /// `text`'s tokens without special tokens, unbounded.
    fn bare(&self, text: &str) -> Result<Encoding, TokenizeError> {
        self.whole
            .encode_fast(text, false)
            .map_err(|e| TokenizeError::Failed(e.to_string()))
    }

    /// How many of a text's own tokens fit beside the special tokens.
    fn room(&self, pair: bool) -> usize {
        let specials = self
            .whole
            .get_post_processor()
            .map_or(0, |p| p.added_tokens(pair));
        self.max_len.saturating_sub(specials)
    }

    /// Cuts bare encodings to the maximum length (the longer text of a pair
    /// first) and adds the special tokens; says whether anything was cut.
    fn finish(
        &self,
        first: Encoding,
        second: Option<Encoding>,
        add_special: bool,
    ) -> Result<(Encoding, bool), TokenizeError> {
        let failed = |e: tokenizers::Error| TokenizeError::Failed(e.to_string());
        let room = if add_special {
            self.room(second.is_some())
        } else {
            self.max_len
        };
        let params = TruncationParams {
            max_length: room,
            strategy: TruncationStrategy::LongestFirst,
            stride: 0,
            direction: TruncationDirection::Right,
        };
        let whole =
            |a: &Encoding, b: &Option<Encoding>| a.len() + b.as_ref().map_or(0, Encoding::len);
        let before = whole(&first, &second);
        let (mut first, mut second) = truncate_encodings(first, second, &params).map_err(failed)?;
        let truncated = whole(&first, &second) < before;
        // What was cut is not used: spare the post-processor its work.
        drop(first.take_overflowing());
        if let Some(s) = second.as_mut() {
            drop(s.take_overflowing());
        }
        let enc = self
            .whole
            .post_process(first, second, add_special)
            .map_err(failed)?;
        Ok((enc, truncated))
    }

    /// The prefix of `text` worth tokenizing with `budget` bytes; all of it when
    /// the tokenizer gives no place to cut.
    fn prefix<'t>(&self, text: &'t str, budget: usize) -> &'t str {
        match self.cuts {
            Some(cuts) => prefix_between_words(text, budget, cuts),
            None => text,
        }
    }
}

/// No padding and no truncation: the batcher pads, Osprey truncates.
fn untruncated(t: &mut Tokenizer) -> Result<()> {
    t.with_padding(None);
    t.with_truncation(None)
        .map_err(|e| ModelError::Tokenizer(e.to_string()))?;
    Ok(())
}

/// Tokenizers in use, by the hash of their serialized form; an entry lives as
/// long as a model holds it.
type Shared = Vec<([u8; 32], Weak<Tokenizer>)>;

/// The tokenizer in use for `key`, or `made` from now on.
fn shared(key: [u8; 32], made: Tokenizer) -> Arc<Tokenizer> {
    static IN_USE: Mutex<Shared> = Mutex::new(Vec::new());
    let mut in_use = IN_USE.lock().unwrap_or_else(|p| p.into_inner());
    in_use.retain(|(_, w)| w.strong_count() > 0);
    if let Some(t) = in_use
        .iter()
        .find(|(k, _)| *k == key)
        .and_then(|(_, w)| w.upgrade())
    {
        return t;
    }
    let t = Arc::new(made);
    in_use.push((key, Arc::downgrade(&t)));
    t
}

/// The longest prefix of `text` of at most `budget` bytes that ends just before a
/// place the tokenizer cuts anyway; the whole text when it fits, and an empty
/// prefix when no such place exists in the budget, so the caller grows the budget.
fn prefix_between_words(text: &str, budget: usize, cuts: Cuts) -> &str {
    if text.len() <= budget {
        return text;
    }
    let mut end = budget;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    if text[end..].chars().next().is_some_and(|c| cuts.allows(c)) {
        return &text[..end];
    }
    let cut = text[..end]
        .char_indices()
        .rev()
        .find(|&(_, c)| cuts.allows(c))
        .map_or(0, |(i, _)| i);
    &text[..cut]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn models_with_one_tokenizer_file_share_it() {
        let file = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../models/all-MiniLM-L6-v2/tokenizer.json");
        let (Ok(a), Ok(b), Ok(c)) = (
            TextTokenizer::load(&file, 256),
            TextTokenizer::load(&file, 256),
            TextTokenizer::load(&file, 128),
        ) else {
            panic!("load {} (run `make model`)", file.display());
        };
        assert!(Arc::ptr_eq(&a.whole, &b.whole) && Arc::ptr_eq(&a.whole, &c.whole));
        // Another file of the same tokenizer, its truncation and padding settings
        // aside, shares it too; one that differs does not.
        let dir = tempfile::tempdir().expect("temporary directory");
        let json: serde_json::Value = std::fs::read(&file)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .expect("tokenizer.json is JSON");
        let write = |name: &str, edit: &dyn Fn(&mut serde_json::Value)| {
            let mut v = json.clone();
            edit(&mut v);
            let path = dir.path().join(name);
            std::fs::write(&path, v.to_string()).expect("write");
            TextTokenizer::load(&path, 256).expect("load the copy")
        };
        let resaved = write("resaved.json", &|v| {
            v["truncation"] = serde_json::json!({"direction": "Right", "max_length": 512,
                "strategy": "LongestFirst", "stride": 0});
            v["padding"] = serde_json::Value::Null;
        });
        assert!(Arc::ptr_eq(&a.whole, &resaved.whole));
        let other = write("other.json", &|v| {
            v["normalizer"]["lowercase"] = false.into()
        });
        assert!(!Arc::ptr_eq(&a.whole, &other.whole));
        let long = "word ".repeat(400);
        assert_eq!(a.encode(&long, true).map(|e| e.ids.len()), Ok(256));
        assert_eq!(c.encode(&long, true).map(|e| e.ids.len()), Ok(128));
    }

    #[test]
    fn long_texts_and_pairs_are_cut_as_the_tokenizers_library_cuts_them() {
        let file = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../models/all-MiniLM-L6-v2/tokenizer.json");
        let (Ok(ours), Ok(mut reference)) =
            (TextTokenizer::load(&file, 128), Tokenizer::from_file(&file))
        else {
            panic!("load {} (run `make model`)", file.display());
        };
        let params = TruncationParams {
            max_length: 128,
            strategy: TruncationStrategy::LongestFirst,
            stride: 0,
            direction: TruncationDirection::Right,
        };
        reference.with_padding(None);
        let Ok(untruncated) = reference.with_truncation(None).map(|t| t.clone()) else {
            panic!("truncation settings refused");
        };
        let Ok(reference) = reference.with_truncation(Some(params)).map(|t| t.clone()) else {
            panic!("truncation settings refused");
        };
        let short = "how do owls hunt at night?";
        let long = "Owls hunt by sound, turning their heads to find prey. ".repeat(30);
        let other = "A barn owl's face is a dish that gathers sound, ".repeat(25);
        let Ok(want) = reference.encode(long.as_str(), true) else {
            panic!("reference encoding failed");
        };
        let Ok(got) = ours.encode(&long, true) else {
            panic!("encoding failed");
        };
        assert_eq!(got.ids, want.get_ids());
        assert!(got.truncated);
        for (a, b) in [
            (short, long.as_str()),
            (long.as_str(), short),
            (long.as_str(), other.as_str()),
            (short, "by ear"),
        ] {
            let Ok(want) = reference.encode((a, b), true) else {
                panic!("reference encoding failed");
            };
            let Ok(got) = ours.encode_pair(a, b, true) else {
                panic!("encoding failed");
            };
            assert_eq!(got.ids, want.get_ids(), "{a:.20} / {b:.20}");
            assert_eq!(got.second, want.get_type_ids().iter().position(|&t| t == 1));
            assert_eq!(got.truncated, !want.get_overflowing().is_empty());
        }
        let Ok(whole) = untruncated.encode((long.as_str(), other.as_str()), true) else {
            panic!("reference encoding failed");
        };
        assert_eq!(
            ours.encode_pair(&long, &other, false),
            Err(TokenizeError::TooLong {
                tokens: whole.len(),
                max: 128
            })
        );
    }

    #[test]
    fn prefixes_end_between_words() {
        let bert = Cuts::Bert;
        assert_eq!(prefix_between_words("short", 10, bert), "short");
        assert_eq!(
            prefix_between_words("hello world again", 13, bert),
            "hello world"
        );
        assert_eq!(prefix_between_words("hello, world", 5, bert), "hello");
        assert_eq!(
            prefix_between_words("hello, world", 5, Cuts::Whitespace),
            ""
        );
        assert_eq!(prefix_between_words("nowhitespaceatall", 5, bert), "");
        assert_eq!(prefix_between_words("长江长江", 7, bert), "长江");
        // Never inside a character.
        assert_eq!(prefix_between_words("é é é", 4, bert), "é");
    }
}
