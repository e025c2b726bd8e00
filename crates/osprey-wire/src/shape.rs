//! The shape of JSON text before serde builds anything from it: how deep arrays
//! and objects nest, and how many list items it holds. Counted byte by byte, so a
//! body can be refused while it is still being decompressed.

/// Containers deeper than this are not told apart (arrays from objects): such a
/// body is refused for its depth anyway, and the stack stays small.
const TRACKED_DEPTH: usize = 64;

/// Counts nesting and list items of JSON text fed in pieces, skipping string
/// contents. It does not validate: serde does that.
#[derive(Debug, Default, Clone)]
pub struct ShapeScanner {
    depth: usize,
    max_depth: usize,
    items: usize,
    /// Whether each open container (up to `TRACKED_DEPTH`) is an array.
    arrays: Vec<bool>,
    /// Just after `[` or an array's `,`: the next token starts an item.
    awaiting_item: bool,
    in_string: bool,
    escaped: bool,
    first: Option<u8>,
}

impl ShapeScanner {
    pub fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if self.in_string {
                match b {
                    _ if self.escaped => self.escaped = false,
                    b'\\' => self.escaped = true,
                    b'"' => self.in_string = false,
                    _ => {}
                }
                continue;
            }
            if b.is_ascii_whitespace() {
                continue;
            }
            self.first.get_or_insert(b);
            if self.awaiting_item {
                self.awaiting_item = false;
                if b != b']' {
                    self.items += 1;
                }
            }
            match b {
                b'"' => self.in_string = true,
                b'[' | b'{' => {
                    self.depth += 1;
                    self.max_depth = self.max_depth.max(self.depth);
                    if self.arrays.len() < TRACKED_DEPTH {
                        self.arrays.push(b == b'[');
                    }
                    self.awaiting_item = b == b'[';
                }
                b']' | b'}' => {
                    if self.depth <= self.arrays.len() {
                        self.arrays.pop();
                    }
                    self.depth = self.depth.saturating_sub(1);
                }
                b',' => self.awaiting_item = self.in_array(),
                _ => {}
            }
        }
    }

    fn in_array(&self) -> bool {
        self.depth <= self.arrays.len() && self.arrays.last() == Some(&true)
    }

    /// Deepest nesting of arrays and objects so far.
    pub fn max_depth(&self) -> usize {
        self.max_depth
    }

    /// Elements of every array so far, nested ones included.
    pub fn items(&self) -> usize {
        self.items
    }

    /// The first byte that is not whitespace, if any was fed.
    pub fn first(&self) -> Option<u8> {
        self.first
    }
}

/// Maximum nesting depth of arrays and objects, skipping string contents.
pub fn json_depth(bytes: &[u8]) -> usize {
    let mut s = ShapeScanner::default();
    s.feed(bytes);
    s.max_depth()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(text: &str) -> (usize, usize) {
        let mut s = ShapeScanner::default();
        // In uneven pieces, as a decompressor hands them over.
        for piece in text.as_bytes().chunks(3) {
            s.feed(piece);
        }
        (s.max_depth(), s.items())
    }

    #[test]
    fn counts_items_of_every_array_and_nothing_in_strings() {
        assert_eq!(shape(r#"{"inputs": []}"#), (2, 0));
        assert_eq!(shape(r#"{"inputs": [ ]}"#), (2, 0));
        assert_eq!(shape(r#"{"inputs": ["a"]}"#), (2, 1));
        assert_eq!(shape(r#"{"inputs": ["", "", ""]}"#), (2, 3));
        assert_eq!(shape(r#"{"inputs": [["a", "b"], ["c", "d"]]}"#), (3, 6));
        assert_eq!(
            shape(r#"{"a": 1, "b": {"c": 2, "d": [1, {"e": [3]}]}}"#),
            (5, 3)
        );
        assert_eq!(shape(r#"{"inputs": ["[,,,]", "\",\"", "\\"]}"#), (2, 3));
        assert_eq!(shape(r#"[{}, [], [[]]]"#), (3, 4));
    }

    #[test]
    fn deep_nesting_is_measured_without_a_deep_stack() {
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        let mut s = ShapeScanner::default();
        s.feed(deep.as_bytes());
        assert_eq!(s.max_depth(), 10_000);
        assert!(s.arrays.capacity() <= 2 * TRACKED_DEPTH);
    }
}
