//! The set of nodes a walk has compared: one byte per node, marked with the
//! walk's number, so a new walk clears it by counting instead of by writing
//! (FAISS's `VisitedTable`). Walks take one from a pool and give it back.

#[derive(Default)]
pub(super) struct Visited {
    marks: Vec<u8>,
    mark: u8,
}

impl Visited {
    /// Starts a walk over a graph of `nodes` nodes.
    pub(super) fn reset(&mut self, nodes: usize) {
        if self.marks.len() < nodes {
            self.marks.resize(nodes, 0);
        }
        self.mark = self.mark.wrapping_add(1);
        if self.mark == 0 {
            self.marks.fill(0);
            self.mark = 1;
        }
    }

    /// Marks `node`; false if this walk had marked it already. A node past the
    /// graph's size counts as seen, so a walk never reads it.
    pub(super) fn insert(&mut self, node: u32) -> bool {
        match self.marks.get_mut(node as usize) {
            Some(m) if *m != self.mark => {
                *m = self.mark;
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_walk_sees_nothing_marked_even_after_the_mark_wraps() {
        let mut v = Visited::default();
        for _ in 0..600 {
            v.reset(10);
            assert!(v.insert(3));
            assert!(!v.insert(3));
            assert!(v.insert(9));
        }
        assert!(!v.insert(10), "past the graph");
    }
}
