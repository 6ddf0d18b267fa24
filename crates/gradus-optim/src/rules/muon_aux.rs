//! The registered `muon` optimizer: Muon for matrices, an auxiliary AdamW for the rest (as
//! Keller Jordan's `MuonWithAuxAdam`).
//!
//! A [`Rule`](crate::Rule) sees one parameter at a time and one rule runs a whole
//! [`GroupedOptimizer`], so the split happens when the optimizer is built: [`build_muon`] sends
//! every parameter of rank 2 that matches no `adamw_params` pattern to a
//! `GroupedOptimizer<MuonConfig>` and every other one (biases, gains, scalars, embeddings named
//! by a pattern, ...) to a `GroupedOptimizer<AdamWConfig>`, and [`MuonWithAuxAdamW`] runs both
//! as one [`gradus_core::Optimizer`].
//!
//! In JSON, beside Muon's own fields and `groups` (Muon groups):
//!
//! ```json
//! {"type": "muon", "lr": 0.02,
//!  "adamw_params": ["embed.*", "head.weight"],
//!  "adamw": {"lr": 3e-4, "betas": [0.9, 0.95], "weight_decay": 0.0}}
//! ```
//!
//! `adamw` is an AdamW config (PyTorch's names and defaults, `groups` too), except that its
//! `lr` defaults to Muon's `lr`. `adamw_params` is one glob pattern or a list of them.
//! Parameter groups are numbered Muon's first, then AdamW's (`group_count` is their sum);
//! `set_learning_rate` sets both. The state dict holds Muon's state under `muon.` and AdamW's
//! under `adamw.` (`muon.layer.weight.momentum_buffer`, `adamw.layer.bias.exp_avg`,
//! `adamw.param_groups.0.lr`, ...).

use candle_core::backprop::GradStore;
use gradus_core::config::{index_path, join_path, take_field};
use gradus_core::{Error, NamedVar, Optimizer, Result, StateDict};
use serde::Serialize;
use serde_json::Value;

use crate::engine::build::take_update_path;
use crate::engine::grouped::GroupedOptimizer;
use crate::engine::groups::parse_with_groups;
use crate::engine::path::UpdatePath;
use crate::engine::precision::{take_precision, Precision};
use crate::rules::adamw::AdamWConfig;
use crate::rules::muon::MuonConfig;

/// Muon over the matrices, AdamW over every other parameter and those matching
/// `adamw_params`: the optimizer the registry builds for `"type": "muon"`.
pub struct MuonWithAuxAdamW {
    muon: GroupedOptimizer<MuonConfig>,
    adamw: GroupedOptimizer<AdamWConfig>,
    /// Every parameter, in the order given.
    params: Vec<NamedVar>,
    path: UpdatePath,
}

/// The registered config of `muon`, for its default JSON: Muon's fields, `adamw` and
/// `adamw_params` (parsed by [`build_muon`]).
#[derive(Debug, Clone, Default, Serialize, schemars::JsonSchema)]
// What `build_muon` accepts (strictly, as each part is parsed strictly).
#[schemars(deny_unknown_fields)]
pub struct MuonWithAuxAdamWConfig {
    /// Muon's hyperparameters.
    #[serde(flatten)]
    pub muon: MuonConfig,
    /// The auxiliary AdamW's hyperparameters (its `lr` defaults to Muon's), with its own
    /// optional `groups`.
    #[schemars(schema_with = "adamw_schema")]
    pub adamw: AdamWConfig,
    /// Glob patterns of matrices to give to AdamW instead of Muon: one pattern or a list.
    #[schemars(schema_with = "patterns_schema")]
    pub adamw_params: Vec<String>,
}

/// The auxiliary AdamW in `gradus schema`: AdamW's config plus its `groups`.
fn adamw_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let mut schema = gradus_core::schema::config_schema::<AdamWConfig>();
    let groups = gradus_core::schema::parameter_groups(&schema);
    if let Some(properties) = schema["properties"].as_object_mut() {
        properties.insert("groups".into(), groups);
    }
    schemars::Schema::try_from(schema).unwrap_or_default()
}

/// `adamw_params`: a pattern or a list of patterns.
fn patterns_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}, {"type": "null"}]
    })
}

impl MuonWithAuxAdamW {
    /// Muon over `params` of rank 2 that match none of `adamw_params`, AdamW over the others.
    pub fn new(
        params: Vec<NamedVar>,
        muon: MuonConfig,
        adamw: AdamWConfig,
        adamw_params: &[&str],
    ) -> Result<Self> {
        let patterns = adamw_params
            .iter()
            .enumerate()
            .map(|(i, p)| compile(p, &index_path("adamw_params", i)))
            .collect::<Result<Vec<_>>>()?;
        Self::split(params, (muon, Vec::new()), (adamw, Vec::new()), &patterns)
    }

    fn split(
        params: Vec<NamedVar>,
        (muon, muon_groups): (MuonConfig, Vec<crate::GroupSpec<MuonConfig>>),
        (adamw, adamw_groups): (AdamWConfig, Vec<crate::GroupSpec<AdamWConfig>>),
        patterns: &[glob::Pattern],
    ) -> Result<Self> {
        let (matrices, others): (Vec<NamedVar>, Vec<NamedVar>) =
            params.iter().cloned().partition(|p| {
                p.var.dims().len() == 2 && !patterns.iter().any(|pat| pat.matches(&p.name))
            });
        Ok(MuonWithAuxAdamW {
            muon: GroupedOptimizer::with_groups(matrices, muon, muon_groups)?,
            adamw: GroupedOptimizer::with_groups(others, adamw, adamw_groups)?,
            params,
            path: UpdatePath::Auto,
        })
    }

    /// Sets how bf16/f16 parameters are stepped, in both halves (before the first step; see
    /// [`GroupedOptimizer::set_precision`]).
    pub fn set_precision(&mut self, precision: Precision) -> Result<()> {
        self.muon.set_precision(precision)?;
        self.adamw.set_precision(precision)
    }

    /// The Muon half (the matrices).
    pub fn muon(&self) -> &GroupedOptimizer<MuonConfig> {
        &self.muon
    }

    /// The AdamW half (every other parameter).
    pub fn adamw(&self) -> &GroupedOptimizer<AdamWConfig> {
        &self.adamw
    }

    /// Which half holds `group`, and its index there.
    fn locate(&self, group: usize) -> Result<(bool, usize)> {
        let m = Optimizer::group_count(&self.muon);
        let total = m + Optimizer::group_count(&self.adamw);
        if group < m {
            Ok((true, group))
        } else if group < total {
            Ok((false, group - m))
        } else {
            Err(Error::config(
                "group",
                format!("no parameter group {group} (the optimizer has {total})"),
            ))
        }
    }
}

fn compile(pattern: &str, path: &str) -> Result<glob::Pattern> {
    glob::Pattern::new(pattern)
        .map_err(|e| Error::config(path, format!("invalid parameter pattern `{pattern}`: {e}")))
}

/// The registered constructor of `muon`: see the [module](self) documentation.
pub fn build_muon(config: &Value, path: &str, params: &[NamedVar]) -> Result<Box<dyn Optimizer>> {
    let mut config = config.clone();
    let update_path = take_update_path(&mut config, path)?;
    let precision = take_precision(&mut config, path)?;
    let adamw_path = join_path(path, "adamw");
    let mut adamw = match take_field(&mut config, "adamw") {
        None | Some(Value::Null) => Value::Object(Default::default()),
        Some(v @ Value::Object(_)) => v,
        Some(_) => return Err(Error::config(adamw_path, "expected an AdamW config object")),
    };
    let patterns_path = join_path(path, "adamw_params");
    let patterns = match take_field(&mut config, "adamw_params") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(p)) => vec![compile(&p, &patterns_path)?],
        Some(Value::Array(list)) => list
            .iter()
            .enumerate()
            .map(|(i, p)| match p {
                Value::String(p) => compile(p, &index_path(&patterns_path, i)),
                _ => Err(Error::config(
                    index_path(&patterns_path, i),
                    "expected a string pattern",
                )),
            })
            .collect::<Result<_>>()?,
        Some(_) => {
            return Err(Error::config(
                patterns_path,
                "expected a pattern or a list of patterns",
            ))
        }
    };
    let muon = parse_with_groups::<MuonConfig>(&config, path)?;
    if let Some(object) = adamw.as_object_mut() {
        object.entry("lr").or_insert_with(|| Value::from(muon.0.lr));
    }
    let adamw = parse_with_groups::<AdamWConfig>(&adamw, &adamw_path)?;
    let mut optimizer = MuonWithAuxAdamW::split(params.to_vec(), muon, adamw, &patterns)?;
    optimizer.set_precision(precision)?;
    optimizer
        .set_update_path(update_path)
        .map_err(|e| Error::config(join_path(path, "path"), e.to_string()))?;
    Ok(Box::new(optimizer))
}

impl Optimizer for MuonWithAuxAdamW {
    fn algorithm(&self) -> &str {
        "muon"
    }

    fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.muon.apply(grads)?;
        self.adamw.apply(grads)
    }

    fn params(&self) -> Vec<NamedVar> {
        self.params.clone()
    }

    fn group_count(&self) -> usize {
        Optimizer::group_count(&self.muon) + Optimizer::group_count(&self.adamw)
    }

    /// Muon's names, then AdamW's others (`beta1`, `beta2`); a group has its own half's.
    fn hyperparameter_names(&self) -> Vec<&'static str> {
        let mut names = Optimizer::hyperparameter_names(&self.muon);
        for name in Optimizer::hyperparameter_names(&self.adamw) {
            if !names.contains(&name) {
                names.push(name);
            }
        }
        names
    }

    fn hyperparameter(&self, group: usize, name: &str) -> Result<f64> {
        match self.locate(group)? {
            (true, g) => Optimizer::hyperparameter(&self.muon, g, name),
            (false, g) => Optimizer::hyperparameter(&self.adamw, g, name),
        }
    }

    fn set_hyperparameter(&mut self, group: usize, name: &str, value: f64) -> Result<()> {
        match self.locate(group)? {
            (true, g) => Optimizer::set_hyperparameter(&mut self.muon, g, name, value),
            (false, g) => Optimizer::set_hyperparameter(&mut self.adamw, g, name, value),
        }
    }

    fn state_dict(&self) -> Result<StateDict> {
        let mut sd = StateDict::new();
        sd.extend_prefixed("muon", &self.muon.state_dict()?);
        sd.extend_prefixed("adamw", &self.adamw.state_dict()?);
        Ok(sd)
    }

    /// Loads both halves, or neither: a failure of AdamW's restores Muon's previous state.
    fn load_state_dict(&mut self, state: &StateDict) -> Result<()> {
        if let Some(extra) = state
            .names()
            .find(|n| !n.starts_with("muon.") && !n.starts_with("adamw."))
        {
            return Err(Error::StateMismatch(format!(
                "saved state has `{extra}`, which is neither Muon's (`muon.`) nor AdamW's \
                 (`adamw.`) state of a muon optimizer"
            )));
        }
        let before = self.muon.state_dict()?;
        self.muon.load_state_dict(&state.sub("muon"))?;
        if let Err(e) = self.adamw.load_state_dict(&state.sub("adamw")) {
            self.muon.load_state_dict(&before)?;
            return Err(e);
        }
        Ok(())
    }

    fn update_path(&self) -> UpdatePath {
        self.path
    }

    /// `fused` is refused (Muon has no kernel); `auto` lets AdamW take its fused path.
    fn set_update_path(&mut self, path: UpdatePath) -> Result<()> {
        Optimizer::set_update_path(&mut self.muon, path)?;
        Optimizer::set_update_path(&mut self.adamw, path)?;
        self.path = path;
        Ok(())
    }
}

gradus_core::register_optimizer!(
    "muon",
    "Muon, Newton-Schulz-orthogonalized momentum for matrices, AdamW for the rest (torch.optim.Muon)",
    MuonWithAuxAdamWConfig,
    crate::rules::muon_aux::build_muon
);

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor, Var};

    fn params() -> Vec<NamedVar> {
        let w = Tensor::new(&[[0.5f64, -1.0, 2.0], [1.5, -0.25, 0.75]], &Device::Cpu).unwrap();
        let e = Tensor::new(&[[0.1f64, 0.2], [0.3, 0.4]], &Device::Cpu).unwrap();
        vec![
            NamedVar::new("layer.weight", Var::from_tensor(&w).unwrap()),
            NamedVar::new(
                "layer.bias",
                Var::new(&[0.3f64, -0.7], &Device::Cpu).unwrap(),
            ),
            NamedVar::new("embed.weight", Var::from_tensor(&e).unwrap()),
        ]
    }

    #[test]
    fn matrices_go_to_muon_and_the_rest_to_adamw() {
        let config = serde_json::json!({
            "type": "muon", "lr": 0.02, "adamw_params": "embed.*", "adamw": {"betas": [0.9, 0.95]}
        });
        let opt = crate::build_optimizer(&config, "optimizer", &params()).unwrap();
        assert_eq!(opt.group_count(), 2);
        assert_eq!(opt.hyperparameter(0, "momentum").unwrap(), 0.95);
        // AdamW's lr defaults to Muon's, its other fields to AdamW's.
        assert_eq!(opt.hyperparameter(1, "lr").unwrap(), 0.02);
        assert_eq!(opt.hyperparameter(1, "beta2").unwrap(), 0.95);
        assert_eq!(opt.hyperparameter(1, "weight_decay").unwrap(), 0.01);
        let names: Vec<String> = opt.params().into_iter().map(|p| p.name).collect();
        assert_eq!(names, ["layer.weight", "layer.bias", "embed.weight"]);
    }

    #[test]
    fn state_is_kept_per_half_and_round_trips() {
        let params = params();
        let mut opt = MuonWithAuxAdamW::new(
            params.clone(),
            MuonConfig::default(),
            AdamWConfig::default(),
            &["embed.*"],
        )
        .unwrap();
        let mut loss = params[0].var.as_tensor().sqr().unwrap().sum_all().unwrap();
        for p in &params[1..] {
            loss = (loss + p.var.as_tensor().sqr().unwrap().sum_all().unwrap()).unwrap();
        }
        opt.step(&loss.backward().unwrap()).unwrap();
        let sd = opt.state_dict().unwrap();
        assert!(sd.get("muon.layer.weight.momentum_buffer").is_some());
        assert!(sd.get("adamw.layer.bias.exp_avg").is_some());
        assert!(sd.get("adamw.embed.weight.exp_avg").is_some());
        assert!(sd.get("muon.embed.weight.momentum_buffer").is_none());
        opt.load_state_dict(&sd).unwrap();
        let mut bad = sd.clone();
        bad.insert(
            "layer.weight.step",
            Tensor::new(1.0f64, &Device::Cpu).unwrap(),
        );
        assert!(opt.load_state_dict(&bad).is_err());
    }

    #[test]
    fn the_fused_path_is_refused() {
        let config = serde_json::json!({"type": "muon", "path": "fused"});
        let err = crate::build_optimizer(&config, "optimizer", &params())
            .err()
            .unwrap();
        assert!(err.to_string().contains("no fused kernel"), "{err}");
    }
}
