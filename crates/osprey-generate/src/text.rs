//! Turns a stream of token bytes into text that is safe to send: whole UTF-8
//! characters only, and nothing that could still turn out to be the start of a
//! stop sequence.

/// The answer's text as tokens arrive.
#[derive(Debug, Default)]
pub struct TextStream {
    /// Bytes of a character cut across tokens.
    pending: Vec<u8>,
    /// Decoded text not yet released: it may be the start of a stop sequence.
    held: String,
    stops: Vec<String>,
}

/// What one token added.
#[derive(Debug, PartialEq, Eq)]
pub struct Step {
    /// Text that can be sent now.
    pub text: String,
    /// A stop sequence was found; the answer ends before it.
    pub stopped: bool,
}

impl TextStream {
    pub fn new(stops: Vec<String>) -> Self {
        Self {
            stops: stops.into_iter().filter(|s| !s.is_empty()).collect(),
            ..Self::default()
        }
    }

    /// Adds one token's bytes.
    pub fn push(&mut self, bytes: &[u8]) -> Step {
        self.pending.extend_from_slice(bytes);
        let valid = match std::str::from_utf8(&self.pending) {
            Ok(s) => s.len(),
            // An invalid sequence (not merely cut short) can never complete:
            // replace it rather than hold it for ever.
            Err(e) if e.error_len().is_some() => {
                let text = String::from_utf8_lossy(&self.pending).into_owned();
                self.pending.clear();
                self.held.push_str(&text);
                return self.release();
            }
            Err(e) => e.valid_up_to(),
        };
        let rest = self.pending.split_off(valid);
        let done = std::mem::replace(&mut self.pending, rest);
        // `done` is valid UTF-8 up to `valid` by the check above.
        self.held.push_str(&String::from_utf8_lossy(&done));
        self.release()
    }

    /// Releases what cannot be part of a stop sequence any more.
    fn release(&mut self) -> Step {
        if let Some(at) = self
            .stops
            .iter()
            .filter_map(|s| self.held.find(s.as_str()))
            .min()
        {
            self.held.truncate(at);
            // Bytes after the stop sequence are not part of the answer.
            self.pending.clear();
            return Step {
                text: std::mem::take(&mut self.held),
                stopped: true,
            };
        }
        // Keep the longest tail that is a prefix of some stop sequence.
        let keep = self
            .stops
            .iter()
            .map(|s| longest_prefix_suffix(&self.held, s))
            .max()
            .unwrap_or(0);
        let cut = self.held.len() - keep;
        let rest = self.held.split_off(cut);
        Step {
            text: std::mem::replace(&mut self.held, rest),
            stopped: false,
        }
    }

    /// What is left once the answer ends without a stop sequence.
    pub fn finish(&mut self) -> String {
        let mut text = std::mem::take(&mut self.held);
        if !self.pending.is_empty() {
            text.push_str(&String::from_utf8_lossy(&self.pending));
            self.pending.clear();
        }
        text
    }
}

/// The length of the longest end of `text` that begins `stop` (shorter than it).
fn longest_prefix_suffix(text: &str, stop: &str) -> usize {
    let max = stop.len().saturating_sub(1).min(text.len());
    (1..=max)
        .rev()
        .find(|&n| {
            text.is_char_boundary(text.len() - n)
                && stop.is_char_boundary(n)
                && text.ends_with(&stop[..n])
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], pieces: &[&[u8]]) -> (Vec<String>, bool, String) {
        let mut s = TextStream::new(stops.iter().map(|s| s.to_string()).collect());
        let mut out = Vec::new();
        for p in pieces {
            let step = s.push(p);
            out.push(step.text);
            if step.stopped {
                return (out, true, String::new());
            }
        }
        let rest = s.finish();
        (out, false, rest)
    }

    #[test]
    fn characters_cut_across_tokens_come_out_whole() {
        let e = "é".as_bytes();
        let (out, stopped, rest) = run(&[], &[b"caf", &e[..1], &e[1..], b"!"]);
        assert_eq!(out, ["caf", "", "é", "!"]);
        assert!(!stopped);
        assert_eq!(rest, "");
    }

    #[test]
    fn a_stop_sequence_across_tokens_ends_the_text_before_it() {
        let (out, stopped, _) = run(&["\nUser:"], &[b"Hi there", b"\nUs", b"er: more"]);
        assert_eq!(out, ["Hi there", "", ""]);
        assert!(stopped);
    }

    #[test]
    fn a_false_start_is_released_once_it_cannot_match() {
        let (out, stopped, rest) = run(&["END"], &[b"the E", b"N", b"d of it"]);
        assert_eq!(out.concat(), "the ENd of it");
        assert_eq!(out[0], "the ");
        assert!(!stopped);
        assert_eq!(rest, "");
    }

    #[test]
    fn held_text_is_given_back_at_the_end() {
        let (out, stopped, rest) = run(&["STOP"], &[b"a ST"]);
        assert_eq!(out, ["a "]);
        assert!(!stopped);
        assert_eq!(rest, "ST");
    }

    #[test]
    fn nothing_after_a_stop_sequence_is_given_back() {
        let mut s = TextStream::new(vec!["END".into()]);
        let step = s.push(b"done END\xc3");
        assert_eq!(step.text, "done ");
        assert!(step.stopped);
        assert_eq!(s.finish(), "");
    }

    #[test]
    fn invalid_bytes_are_replaced_not_held() {
        let (out, _, _) = run(&[], &[b"a\xff", b"b"]);
        assert_eq!(out, ["a\u{fffd}", "b"]);
    }
}
