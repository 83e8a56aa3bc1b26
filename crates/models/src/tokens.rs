//! Token counts as OpenAI's current models count them: the `o200k_base` encoding (GPT-4o and
//! later), shipped inside the `tiktoken-rs` crate and decoded on first use (about 20 MB), so a
//! process that never builds a context never pays for it.

use honcho_domain::context::TokenCounter;
use tiktoken_rs::CoreBPE;

/// Counts with `o200k_base`.
#[derive(Debug, Default)]
pub struct O200kCounter;

impl O200kCounter {
    fn encoding() -> &'static CoreBPE {
        tiktoken_rs::o200k_base_singleton()
    }
}

impl TokenCounter for O200kCounter {
    fn encoding(&self) -> &str {
        "o200k_base"
    }

    fn count(&self, text: &str) -> usize {
        Self::encoding().encode_ordinary(text).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_tokens_not_characters() {
        let c = O200kCounter;
        assert_eq!(c.count(""), 0);
        assert_eq!(c.count("hello world"), 2);
        assert!(c.count("antidisestablishmentarianism") > 1);
        // Special-token text is counted as ordinary text.
        assert!(c.count("<|endoftext|>") > 1);
    }
}
