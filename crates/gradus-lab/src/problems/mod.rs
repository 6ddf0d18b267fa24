//! The built-in problems, one file each, every one registered by name.

pub mod beale;
pub mod cliff;
pub mod himmelblau;
pub mod least_squares;
pub mod monkey_saddle;
pub mod plateau;
pub mod quadratic;
pub mod rastrigin;
pub mod rosenbrock;
pub mod saddle;
