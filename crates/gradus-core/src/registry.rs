//! The plugin registry: one `inventory` collection per component kind.
//!
//! A registration is const data ([`Entry`]) submitted next to the component with one
//! `register_*!` macro line. The name -> entry map of each kind is built once, on first use;
//! a duplicate name is an error naming both origins, and an unknown name is an error that lists
//! the registered names and suggests the nearest.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde_json::Value;

use crate::config::{display_path, join_path, split_type};
use crate::error::{Error, Result};
use crate::suggest::nearest;

/// A kind of plugin: its name and the signature of its constructor.
pub trait Kind: Sized + Send + Sync + 'static {
    /// Lower-case name of the kind, as used by `gradus list KIND`.
    const NAME: &'static str;
    /// The constructor: a plain function pointer taking the component's JSON config.
    type Build: Copy + Send + Sync + 'static;
    /// Every entry submitted for this kind, in link order.
    fn submitted() -> Vec<&'static Entry<Self>>;
    /// The once-built name map of this kind.
    fn cell() -> &'static OnceLock<std::result::Result<NameMap<Self>, Duplicate>>;
}

/// One registered component: plain const data.
pub struct Entry<K: Kind> {
    /// Unique name within the kind: the `"type"` used in JSON.
    pub name: &'static str,
    /// One-line summary for `gradus list`.
    pub summary: &'static str,
    /// The default configuration as JSON (without `"type"`).
    pub default_config: fn() -> Value,
    /// The JSON Schema of the config (without `"type"`), from its `JsonSchema` derive.
    pub schema: fn() -> Value,
    /// Builds the component from its JSON config.
    pub build: K::Build,
    /// Module path of the registration, named in duplicate-name errors.
    pub origin: &'static str,
}

/// Name -> entry map of one kind.
pub type NameMap<K> = BTreeMap<&'static str, &'static Entry<K>>;

/// Two registrations with one name (kept clonable inside the once-built map).
#[derive(Debug, Clone)]
pub struct Duplicate {
    name: String,
    first: String,
    second: String,
}

/// Builds a name map from entries, rejecting duplicate names.
///
/// Entries are given as `(name, origin, item)`; this is the whole logic of the registry, kept
/// free of `inventory` so that it can be tested on any list.
pub fn build_name_map<'a, T>(
    kind: &'static str,
    entries: impl IntoIterator<Item = (&'static str, &'static str, &'a T)>,
) -> Result<BTreeMap<&'static str, &'a T>> {
    build_map_raw(entries).map_err(|d| d.into_error(kind))
}

fn build_map_raw<'a, T>(
    entries: impl IntoIterator<Item = (&'static str, &'static str, &'a T)>,
) -> std::result::Result<BTreeMap<&'static str, &'a T>, Duplicate> {
    let mut map = BTreeMap::new();
    let mut origins: BTreeMap<&'static str, &'static str> = BTreeMap::new();
    for (name, origin, item) in entries {
        if let Some(first) = origins.insert(name, origin) {
            let (first, second) = if first <= origin {
                (first, origin)
            } else {
                (origin, first)
            };
            return Err(Duplicate {
                name: name.to_string(),
                first: first.to_string(),
                second: second.to_string(),
            });
        }
        map.insert(name, item);
    }
    Ok(map)
}

impl Duplicate {
    fn into_error(self, kind: &'static str) -> Error {
        Error::DuplicateName {
            kind,
            name: self.name,
            first: self.first,
            second: self.second,
        }
    }
}

/// The name map of kind `K`, built on first use.
pub fn name_map<K: Kind>() -> Result<&'static NameMap<K>> {
    K::cell()
        .get_or_init(|| build_map_raw(K::submitted().into_iter().map(|e| (e.name, e.origin, e))))
        .as_ref()
        .map_err(|d| d.clone().into_error(K::NAME))
}

/// Every entry of kind `K`, sorted by name.
pub fn entries<K: Kind>() -> Result<Vec<&'static Entry<K>>> {
    Ok(name_map::<K>()?.values().copied().collect())
}

/// The entry registered as `name`; `path` is the JSON path of the `type` field, for errors.
pub fn lookup<K: Kind>(name: &str, path: &str) -> Result<&'static Entry<K>> {
    let map = name_map::<K>()?;
    map.get(name).copied().ok_or_else(|| Error::UnknownName {
        kind: K::NAME,
        name: name.to_string(),
        path: display_path(path),
        valid: map.keys().map(|k| k.to_string()).collect(),
        suggestion: nearest(name, map.keys()),
    })
}

/// Splits `{"type": name, ...}` at `path` and looks the name up: the entry and the rest of the config.
pub fn resolve<K: Kind>(config: &Value, path: &str) -> Result<(&'static Entry<K>, Value)> {
    let (name, rest) = split_type(config, path)?;
    let entry = lookup::<K>(&name, &join_path(path, "type"))?;
    Ok((entry, rest))
}

/// One line of the catalogue shown by `gradus list`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CatalogEntry {
    /// Component kind.
    pub kind: &'static str,
    /// Registered name.
    pub name: &'static str,
    /// One-line summary.
    pub summary: &'static str,
    /// Default configuration.
    pub defaults: Value,
    /// Module that registered it.
    pub origin: &'static str,
    /// JSON Schema of the config (`gradus schema`; not part of `gradus list`).
    #[serde(skip)]
    pub schema: Value,
}

fn catalog_of<K: Kind>() -> Result<Vec<CatalogEntry>> {
    Ok(entries::<K>()?
        .into_iter()
        .map(|e| CatalogEntry {
            kind: K::NAME,
            name: e.name,
            summary: e.summary,
            defaults: (e.default_config)(),
            origin: e.origin,
            schema: (e.schema)(),
        })
        .collect())
}

macro_rules! define_kinds {
    ($($(#[$doc:meta])* $kind:ident => $name:literal, $build:ty;)*) => {
        $(
            $(#[$doc])*
            #[derive(Debug, Clone, Copy)]
            pub struct $kind;

            inventory::collect!(Entry<$kind>);

            impl Kind for $kind {
                const NAME: &'static str = $name;
                type Build = $build;
                fn submitted() -> Vec<&'static Entry<Self>> {
                    inventory::iter::<Entry<Self>>.into_iter().collect()
                }
                fn cell() -> &'static OnceLock<std::result::Result<NameMap<Self>, Duplicate>> {
                    static CELL: OnceLock<std::result::Result<NameMap<$kind>, Duplicate>> =
                        OnceLock::new();
                    &CELL
                }
            }
        )*

        /// Names of every plugin kind, in catalogue order.
        pub const KIND_NAMES: &[&str] = &[$($name),*];

        /// The whole catalogue, or one kind of it (`kind` as in [`KIND_NAMES`]).
        pub fn catalog(kind: Option<&str>) -> Result<Vec<CatalogEntry>> {
            if let Some(k) = kind {
                if !KIND_NAMES.contains(&k) {
                    return Err(Error::UnknownName {
                        kind: "component kind",
                        name: k.to_string(),
                        path: "<command line>".to_string(),
                        valid: KIND_NAMES.iter().map(|s| s.to_string()).collect(),
                        suggestion: nearest(k, KIND_NAMES),
                    });
                }
            }
            let mut all = Vec::new();
            $(
                if kind.is_none_or(|k| k == $name) {
                    all.extend(catalog_of::<$kind>()?);
                }
            )*
            Ok(all)
        }
    };
}

define_kinds! {
    /// Optimizers (`gradus-optim`).
    OptimizerKind => "optimizer", crate::plugin::optimizer::OptimizerBuild;
    /// Hyperparameter schedules.
    ScheduleKind => "schedule", crate::plugin::schedule::ScheduleBuild;
    /// Regularizers (penalties, constraints, decoupled decay).
    RegularizerKind => "regularizer", crate::plugin::regularizer::RegularizerBuild;
    /// Parameter initializers (`gradus-init`).
    InitializerKind => "initializer", crate::plugin::initializer::InitializerBuild;
    /// Model layers (linear, conv2d, activations, dropout, ...).
    LayerKind => "layer", crate::plugin::layer::LayerBuild;
    /// Normalization layers (`gradus-norm`).
    NormalizationKind => "normalization", crate::plugin::layer::LayerBuild;
    /// Input preprocessors fitted on the training split.
    PreprocessorKind => "preprocessor", crate::plugin::preprocessor::PreprocessorBuild;
    /// Image augmentations over (N, C, H, W) batches.
    ImageAugmentationKind => "image_augmentation", crate::plugin::augment::ImageAugmentationBuild;
    /// Text augmentations over token sequences.
    TextAugmentationKind => "text_augmentation", crate::plugin::augment::TextAugmentationBuild;
    /// Data sources.
    DataSourceKind => "data_source", crate::plugin::data::DataSourceBuild;
    /// Batching strategies (full batch, stochastic, mini-batch).
    BatchingKind => "batching", crate::plugin::data::BatchingBuild;
    /// Training losses (`gradus-loss`).
    LossKind => "loss", crate::plugin::loss::LossBuild;
}

/// Registers a component of one kind; prefer the per-kind macros such as
/// [`register_optimizer!`](crate::register_optimizer).
#[macro_export]
macro_rules! register_component {
    ($kind:ty, $name:literal, $summary:literal, $config:ty, $build:expr) => {
        $crate::inventory::submit! {
            $crate::registry::Entry::<$kind> {
                name: $name,
                summary: $summary,
                default_config: $crate::config::default_json::<$config>,
                schema: $crate::schema::config_schema::<$config>,
                build: $build,
                origin: ::core::module_path!(),
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::initializer::Initializer;
    use crate::rng::SeededRng;
    use candle_core::{DType, Device, Tensor};

    /// A real (if trivial) initializer, registered only in this test binary.
    struct Fill(f64);

    #[derive(Default, serde::Serialize, schemars::JsonSchema)]
    struct FillConfig {
        value: f64,
    }

    impl Initializer for Fill {
        fn init(
            &self,
            shape: &[usize],
            dtype: DType,
            device: &Device,
            _: &mut SeededRng,
        ) -> Result<Tensor> {
            Ok(Tensor::full(self.0, shape, device)?.to_dtype(dtype)?)
        }
    }

    fn build_fill(config: &Value, path: &str) -> Result<Box<dyn Initializer>> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            value: f64,
        }
        let raw: Raw = crate::config::parse_config(config, path)?;
        Ok(Box::new(Fill(raw.value)))
    }

    crate::register_initializer!(
        "test_fill",
        "fills with a constant (test only)",
        FillConfig,
        build_fill
    );

    #[test]
    fn registered_component_is_found_and_built() {
        let (entry, rest) = resolve::<InitializerKind>(
            &serde_json::json!({"type": "test_fill", "value": 2.5}),
            "layers[0].init",
        )
        .unwrap();
        assert_eq!(entry.name, "test_fill");
        assert!(
            entry.origin.ends_with("registry::tests"),
            "{}",
            entry.origin
        );
        let init = (entry.build)(&rest, "layers[0].init").unwrap();
        let t = init
            .init(&[2, 2], DType::F32, &Device::Cpu, &mut SeededRng::new(0))
            .unwrap();
        assert_eq!(t.to_vec2::<f32>().unwrap(), vec![vec![2.5; 2]; 2]);
        assert_eq!((entry.default_config)(), serde_json::json!({"value": 0.0}));
    }

    #[test]
    fn unknown_name_lists_valid_names_and_suggests() {
        let err = lookup::<InitializerKind>("test_fil", "layers[0].init.type")
            .err()
            .unwrap();
        match &err {
            Error::UnknownName {
                kind,
                path,
                valid,
                suggestion,
                ..
            } => {
                assert_eq!(*kind, "initializer");
                assert_eq!(path, "layers[0].init.type");
                assert!(valid.contains(&"test_fill".to_string()));
                assert_eq!(suggestion.as_deref(), Some("test_fill"));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(
            err.to_string().ends_with("did you mean `test_fill`?"),
            "{err}"
        );
    }

    #[test]
    fn duplicate_names_are_an_error_naming_both_origins() {
        let items = [1, 2, 3];
        let entries = vec![
            ("adam", "crate_a::adam", &items[0]),
            ("sgd", "crate_a::sgd", &items[1]),
            ("adam", "my_plugin::adam", &items[2]),
        ];
        let err = build_name_map("optimizer", entries).unwrap_err();
        assert_eq!(
            err.to_string(),
            "duplicate optimizer name `adam`: registered by crate_a::adam and by my_plugin::adam"
        );
        let ok = build_name_map(
            "optimizer",
            vec![("a", "x", &items[0]), ("b", "y", &items[1])],
        )
        .unwrap();
        assert_eq!(ok.keys().copied().collect::<Vec<_>>(), vec!["a", "b"]);
    }

    #[test]
    fn catalogue_filters_by_kind_and_rejects_unknown_kinds() {
        let all = catalog(Some("initializer")).unwrap();
        assert!(all.iter().all(|e| e.kind == "initializer"));
        assert!(all.iter().any(|e| e.name == "test_fill"));
        let err = catalog(Some("optimiser")).unwrap_err();
        assert!(
            err.to_string().contains("did you mean `optimizer`?"),
            "{err}"
        );
    }
}
