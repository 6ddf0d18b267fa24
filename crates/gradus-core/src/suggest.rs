//! "Did you mean" suggestions for misspelled names and keys.

/// The candidate closest to `input` by edit distance, if it is close enough to be a likely typo.
///
/// Close enough: at most a third of the longer word's length in edits (at least 1), or one word
/// is a prefix of the other.
pub fn nearest<'a, I, S>(input: &str, candidates: I) -> Option<String>
where
    I: IntoIterator<Item = &'a S>,
    S: AsRef<str> + 'a + ?Sized,
{
    let lower = input.to_lowercase();
    candidates
        .into_iter()
        .map(|c| c.as_ref())
        .filter_map(|c| {
            let cl = c.to_lowercase();
            let distance = strsim::levenshtein(&lower, &cl);
            let budget = (lower.len().max(cl.len()) / 3).max(1);
            let prefix = !lower.is_empty() && (cl.starts_with(&lower) || lower.starts_with(&cl));
            (distance <= budget || prefix).then_some((distance, c))
        })
        .min_by_key(|(distance, c)| (*distance, c.len()))
        .map(|(_, c)| c.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_the_closest_key() {
        let keys = ["lr", "betas", "eps", "weight_decay"];
        assert_eq!(nearest("beta", &keys).as_deref(), Some("betas"));
        assert_eq!(
            nearest("wieght_decay", &keys).as_deref(),
            Some("weight_decay")
        );
        assert_eq!(nearest("LR", &keys).as_deref(), Some("lr"));
    }

    #[test]
    fn stays_silent_when_nothing_is_close() {
        let keys = ["lr", "betas"];
        assert_eq!(nearest("completely_different", &keys), None);
    }
}
