//! A constant on a weight matrix logs the symmetry warning; on a bias it does not.
//! (Its own test binary: the logger is process-global.)

use std::sync::Mutex;

use candle_core::{DType, Device};
use gradus_core::plugin::initializer::Initializer;
use gradus_core::SeededRng;
use gradus_init::{Ones, Zeros};

static MESSAGES: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, record: &log::Record) {
        if record.level() == log::Level::Warn {
            MESSAGES.lock().unwrap().push(record.args().to_string());
        }
    }
    fn flush(&self) {}
}

#[test]
fn constant_weight_matrix_warns_about_symmetry() {
    log::set_logger(&Capture).unwrap();
    log::set_max_level(log::LevelFilter::Warn);
    let mut rng = SeededRng::new(0);
    Ones.init(&[8], DType::F32, &Device::Cpu, &mut rng).unwrap();
    assert!(MESSAGES.lock().unwrap().is_empty());
    Zeros
        .init(&[8, 4], DType::F32, &Device::Cpu, &mut rng)
        .unwrap();
    let messages = MESSAGES.lock().unwrap();
    assert_eq!(messages.len(), 1);
    assert!(messages[0].contains("symmetric"), "{}", messages[0]);
    assert!(messages[0].contains("[8, 4]"), "{}", messages[0]);
}
