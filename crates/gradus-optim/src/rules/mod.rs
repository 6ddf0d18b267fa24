//! The built-in optimization algorithms, one file each: config (defaults written once), the
//! coefficients of one step, the reference update in Candle ops and the fused CPU kernel.
//!
//! [`decay`] and [`moments`] hold the building blocks several rules share (weight decay, the
//! moment estimates), each in its tensor form beside its element form.

pub mod adabelief;
pub mod adadelta;
pub mod adafactor;
pub mod adagrad;
pub mod adam;
pub mod adamax;
pub mod adamw;
pub mod adamw_schedule_free;
pub mod adan;
pub mod ademamix;
pub mod adopt;
pub mod asgd;
pub mod decay;
pub mod lamb;
pub mod lars;
pub mod lbfgs;
pub mod lion;
pub mod lookahead;
pub mod moments;
pub mod muon;
pub mod muon_aux;
pub mod nadam;
pub mod prodigy;
pub mod radam;
pub mod rmsprop;
pub mod rprop;
pub mod schedule_free;
pub mod sgd;
pub mod sgd_schedule_free;

#[cfg(test)]
mod proptests;
