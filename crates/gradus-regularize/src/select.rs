//! Which parameters a regularizer acts on: glob-like name patterns, with a weights-only default.
//!
//! Patterns match the whole parameter name (`layers.0.weight`): `*` matches any run of
//! characters (dots included), `?` exactly one character, everything else itself.
//!
//! With no `params` pattern the default rule applies, the common convention of excluding biases
//! and normalization parameters from decay (as timm's `param_groups_weight_decay`): a parameter
//! is selected when its name ends in `weight`, no dot-separated segment of its name contains
//! `norm` or starts with `bn`, and it has at least two dimensions (so a normalization layer's
//! 1-D scale is skipped whatever its name). `exclude` patterns always win.

use gradus_core::{Error, NamedVar, Result};

/// A parameter selection: `params` patterns (empty = the default rule) minus `exclude` patterns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParamFilter {
    params: Vec<String>,
    exclude: Vec<String>,
}

impl ParamFilter {
    /// A filter from include patterns (empty = weights only) and exclude patterns.
    pub fn new(params: Vec<String>, exclude: Vec<String>) -> Self {
        ParamFilter { params, exclude }
    }

    /// Whether a parameter named `name` with `rank` dimensions is selected.
    pub fn matches(&self, name: &str, rank: usize) -> bool {
        let included = if self.params.is_empty() {
            is_default_weight(name, rank)
        } else {
            self.params.iter().any(|p| glob_match(p, name))
        };
        included && !self.exclude.iter().any(|p| glob_match(p, name))
    }

    /// The selected parameters of `all`. Selecting nothing out of a non-empty list is an error
    /// naming `owner` (the regularizer) and the available names, since it is almost always a
    /// misspelled pattern.
    pub fn select<'a>(&self, all: &'a [NamedVar], owner: &str) -> Result<Vec<&'a NamedVar>> {
        let chosen: Vec<&NamedVar> = all
            .iter()
            .filter(|p| self.matches(&p.name, p.var.as_tensor().rank()))
            .collect();
        if chosen.is_empty() && !all.is_empty() {
            let names: Vec<&str> = all.iter().map(|p| p.name.as_str()).take(12).collect();
            let rule = if self.params.is_empty() {
                "the default rule (weights of rank >= 2, no biases or norm parameters)".to_string()
            } else {
                format!("params {:?}", self.params)
            };
            return Err(Error::config(
                owner,
                format!(
                    "{rule} minus exclude {:?} selects no parameter; available: {}",
                    self.exclude,
                    names.join(", ")
                ),
            ));
        }
        Ok(chosen)
    }
}

fn is_default_weight(name: &str, rank: usize) -> bool {
    rank >= 2
        && name.ends_with("weight")
        && !name.split('.').any(|seg| {
            let seg = seg.to_ascii_lowercase();
            seg.contains("norm") || seg.starts_with("bn")
        })
}

/// Whole-string glob match with `*` (any run, possibly empty) and `?` (one character).
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    // Position of the last `*` and the text index it currently absorbs up to.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor, Var};
    use proptest::prelude::*;

    fn var(name: &str, shape: &[usize]) -> NamedVar {
        NamedVar::new(
            name,
            Var::from_tensor(&Tensor::zeros(shape, candle_core::DType::F32, &Device::Cpu).unwrap())
                .unwrap(),
        )
    }

    #[test]
    fn glob_matches_whole_names() {
        assert!(glob_match("layers.*.weight", "layers.0.weight"));
        assert!(glob_match("*weight", "layers.10.weight"));
        assert!(glob_match("layers.?.bias", "layers.3.bias"));
        assert!(!glob_match("layers.?.bias", "layers.13.bias"));
        assert!(!glob_match("layers.*.weight", "layers.0.weight_g"));
        assert!(glob_match("*", ""));
        assert!(glob_match("a*b*c", "axxbyyc"));
        assert!(!glob_match("a*b*c", "axxbyy"));
    }

    #[test]
    fn default_rule_takes_weights_only() {
        let f = ParamFilter::default();
        assert!(f.matches("layers.0.weight", 2));
        assert!(f.matches("conv1.weight", 4));
        assert!(!f.matches("layers.0.bias", 1));
        assert!(!f.matches("layers.1.batchnorm.weight", 2));
        assert!(!f.matches("bn1.weight", 2));
        assert!(!f.matches("layer_norm.weight", 2));
        // A normalization scale named like a weight is still skipped by its rank.
        assert!(!f.matches("layers.2.weight", 1));
    }

    #[test]
    fn patterns_and_excludes() {
        let f = ParamFilter::new(vec!["*".into()], vec!["*.bias".into()]);
        assert!(f.matches("layers.0.weight", 2));
        assert!(f.matches("norm.weight", 1));
        assert!(!f.matches("layers.0.bias", 1));
        let all = vec![var("a.bias", &[3]), var("a.weight", &[2, 3])];
        let chosen = ParamFilter::new(vec!["a.w*".into()], vec![])
            .select(&all, "regularizers[0]")
            .unwrap();
        assert_eq!(chosen.len(), 1);
        let err = ParamFilter::new(vec!["b.*".into()], vec![])
            .select(&all, "regularizers[0]")
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("regularizers[0]") && text.contains("a.weight"),
            "{text}"
        );
    }

    proptest! {
        #[test]
        fn star_matches_everything_and_literal_matches_itself(s in "[a-z0-9._]{0,20}") {
            prop_assert!(glob_match("*", &s));
            prop_assert!(glob_match(&s, &s));
            let wrapped = format!("*{s}*");
            let longer = format!("x{s}y");
            prop_assert!(glob_match(&wrapped, &longer));
        }
    }
}
