//! Prompt caching: when a sequence ends, its KV cells stay in its slot with the
//! tokens they hold. A new prompt goes to the free slot whose tokens it starts
//! with and reads only the rest, so a chat's next turn reads just that turn.
//! Kept cells are the first to go when running sequences need the room.

use llama_cpp_2::token::LlamaToken;

/// Shorter shared starts are not worth a slot's kept tokens: most prompts share
/// their first token or two.
pub(crate) const MIN_REUSE: usize = 4;

/// What a free slot's KV cells still hold.
#[derive(Debug, Default)]
pub(crate) struct Kept {
    /// The tokens in the cells, from position 0.
    pub tokens: Vec<LlamaToken>,
    /// The decode step it was kept at: the oldest goes first.
    pub since: u64,
}

/// How many tokens of `prompt` the `kept` ones stand for: their common start,
/// short of the prompt's last token, whose logits begin the answer.
pub(crate) fn reusable(kept: &[LlamaToken], prompt: &[LlamaToken]) -> usize {
    let common = kept
        .iter()
        .zip(prompt)
        .take_while(|(a, b)| a == b)
        .count()
        .min(prompt.len().saturating_sub(1));
    if common >= MIN_REUSE { common } else { 0 }
}

/// The free slot for `prompt`: the one whose tokens it continues most, else one
/// that keeps nothing, else the one kept longest ago.
///
/// A slot counts as continued when the shared start is half of what it keeps
/// (the next turn of its chat) or half of the prompt (a long system message in
/// common). A few shared template tokens do not count: taking that slot would
/// throw away another conversation to save them.
pub(crate) fn choose(
    free: impl Iterator<Item = usize>,
    kept: &[Kept],
    prompt: &[LlamaToken],
) -> Option<usize> {
    free.max_by_key(|&i| {
        let k = &kept[i];
        let shared = reusable(&k.tokens, prompt);
        let continued = 2 * shared >= k.tokens.len() || 2 * shared >= prompt.len();
        (
            if continued { shared } else { 0 },
            k.tokens.is_empty(),
            std::cmp::Reverse(k.since),
        )
    })
}

/// The slots whose kept cells must go, oldest first, so that the running
/// sequences' `reserved` tokens and the kept ones fit in `total` cells.
pub(crate) fn to_evict(kept: &[Kept], reserved: u64, total: u64) -> Vec<usize> {
    let mut held: u64 = kept.iter().map(|k| k.tokens.len() as u64).sum();
    let mut oldest: Vec<usize> = (0..kept.len())
        .filter(|&i| !kept[i].tokens.is_empty())
        .collect();
    oldest.sort_by_key(|&i| kept[i].since);
    let mut out = Vec::new();
    for i in oldest {
        if reserved + held <= total {
            break;
        }
        held -= kept[i].tokens.len() as u64;
        out.push(i);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(ids: &[i32]) -> Vec<LlamaToken> {
        ids.iter().map(|&i| LlamaToken(i)).collect()
    }

    fn kept(ids: &[i32], since: u64) -> Kept {
        Kept {
            tokens: toks(ids),
            since,
        }
    }

    #[test]
    fn the_shared_start_is_reused_short_of_the_last_prompt_token() {
        let k = toks(&[2, 10, 11, 12, 13, 14, 15]);
        // The next turn: everything kept, then more.
        assert_eq!(reusable(&k, &toks(&[2, 10, 11, 12, 13, 14, 15, 16, 17])), 7);
        // The same prompt again: its last token is read again for its logits.
        assert_eq!(reusable(&k, &toks(&[2, 10, 11, 12, 13, 14, 15])), 6);
        // A prompt that leaves the kept tokens part way.
        assert_eq!(reusable(&k, &toks(&[2, 10, 11, 12, 13, 99, 15, 16])), 5);
        // Too short a shared start is not worth it.
        assert_eq!(reusable(&k, &toks(&[2, 10, 11, 99, 13, 14])), 0);
        assert_eq!(reusable(&[], &toks(&[2, 10, 11])), 0);
    }

    #[test]
    fn a_prompt_goes_where_its_start_is_kept_else_where_least_is_lost() {
        let slots = [
            kept(&[2, 5, 6, 7, 8, 9, 10, 11, 12, 13], 1),
            kept(&[2, 10, 11, 12, 13, 14], 2),
            Kept::default(),
            kept(&[2, 20, 21, 22, 23, 24], 0),
        ];
        let prompt = toks(&[2, 10, 11, 12, 13, 14, 30]);
        assert_eq!(choose(0..4, &slots, &prompt), Some(1));
        // A start shared with a longer conversation, but too little of both, does
        // not take its slot: an empty one does.
        let stranger = toks(&[2, 5, 6, 7, 40, 41, 42, 43, 44, 45]);
        assert_eq!(reusable(&slots[0].tokens, &stranger), 4);
        assert_eq!(choose(0..4, &slots, &stranger), Some(2));
        // Its slot is taken: an empty one, rather than discard anything.
        assert_eq!(choose([0, 2, 3].into_iter(), &slots, &prompt), Some(2));
        // No empty one either: the one kept longest ago.
        assert_eq!(choose([0, 3].into_iter(), &slots, &prompt), Some(3));
        assert_eq!(choose(std::iter::empty(), &slots, &prompt), None);
    }

    #[test]
    fn kept_cells_give_way_oldest_first_to_running_sequences() {
        let slots = [
            kept(&[1; 30], 5),
            Kept::default(),
            kept(&[1; 20], 1),
            kept(&[1; 10], 3),
        ];
        // 60 kept and 40 reserved fit in 100.
        assert!(to_evict(&slots, 40, 100).is_empty());
        // 15 more reserved: the oldest (20 tokens) goes.
        assert_eq!(to_evict(&slots, 55, 100), vec![2]);
        // 70 reserved: then the next oldest too.
        assert_eq!(to_evict(&slots, 70, 100), vec![2, 3]);
        assert_eq!(to_evict(&slots, 85, 100), vec![2, 3, 0]);
    }
}
