//! Input preprocessing fitted on the training split only: `center`, `standardize`, `min_max`,
//! `pca_whiten`.
//!
//! Each preprocessor learns per-feature statistics from the training tensor `(N, features...)`
//! given to [`fit`](gradus_core::plugin::preprocessor::Preprocessor::fit) (and nothing else),
//! applies them to any split with `transform`, undoes them with `inverse`, and saves them with
//! `state()` (f64 tensors of the feature shape) so that inference uses exactly the statistics of
//! training. Statistics are computed in f64 on the host; transforms run in the input's dtype.

pub mod center;
mod features;
pub mod min_max;
pub mod pca_whiten;
pub mod standardize;

pub use center::{Center, CenterConfig};
pub use min_max::{MinMax, MinMaxConfig};
pub use pca_whiten::{PcaWhiten, PcaWhitenConfig};
pub use standardize::{Standardize, StandardizeConfig};
