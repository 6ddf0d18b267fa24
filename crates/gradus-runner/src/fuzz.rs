//! The pipeline fuzzer: mutated versions of the example pipelines, each given to the `gradus`
//! binary (`validate`, and for those it accepts, a short `run`) in a child process with a time
//! and memory limit, and the outcomes counted. A mutation is drawn from the campaign seed and
//! the case number alone, so a case is reproducible on its own whatever the thread count
//! (`cargo xtask fuzz N [--seed S]` reruns a campaign; its report names every failing case).
//!
//! What counts as a failure: a panic (exit 101), an abort or a kill (a signal: allocation
//! failure, the memory limit, a stack overflow), a `validate` timeout, `validate` exiting with
//! anything but 0 or 2, and a pipeline `validate` accepts that `run` then rejects on
//! configuration (exit 1 or 2). A `run` still training at the time limit is counted apart
//! (`run_timeouts`): a valid pipeline may ask for that much work.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use gradus_core::registry::{self, Kind};
use gradus_core::SeededRng;
use serde::Serialize;
use serde_json::{json, Value};

/// How a campaign runs.
#[derive(Debug, Clone)]
pub struct Campaign {
    /// The `gradus` binary under test.
    pub exe: PathBuf,
    /// The pipelines mutations start from.
    pub bases: Vec<Value>,
    /// Mutated pipelines to try.
    pub cases: usize,
    /// Seed of the mutations.
    pub seed: u64,
    /// Wall-clock limit of one child process.
    pub timeout: Duration,
    /// Address-space limit of one child process (bytes; unix only).
    pub memory_limit: u64,
    /// Child processes at a time.
    pub jobs: usize,
    /// Also `run` (for at most `run_epochs` epochs) the pipelines `validate` accepts.
    pub run_valid: bool,
    /// Epoch cap of those runs.
    pub run_epochs: usize,
    /// Where case files and run folders go.
    pub work_dir: PathBuf,
}

/// What happened to one case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// `validate` accepted it (and, if tried, `run` trained it).
    Valid,
    /// `validate` rejected it with exit code 2.
    Rejected,
    /// A panic (exit code 101).
    Panic,
    /// Ended by a signal (abort, memory limit, crash).
    Abort,
    /// Ran past the time limit.
    Timeout,
    /// Any other exit code of `validate` (1: a runtime failure on a pipeline).
    UnexpectedExit,
    /// `validate` accepted it, `run` rejected it or failed on it.
    RunDisagrees,
    /// `validate` accepted it and `run` was still training at the time limit: a pipeline may
    /// legitimately ask for more than the limit (a wide layer), so this is counted, not failed.
    RunTimeout,
}

impl Outcome {
    /// A defect of the binary (everything but `Valid` and `Rejected`).
    pub fn is_failure(self) -> bool {
        !matches!(
            self,
            Outcome::Valid | Outcome::Rejected | Outcome::RunTimeout
        )
    }
}

/// A failing case, for the report.
#[derive(Debug, Clone, Serialize)]
pub struct FailedCase {
    /// The case number (rerun it with the same seed).
    pub case: usize,
    /// What went wrong.
    pub outcome: Outcome,
    /// The mutations applied.
    pub mutations: Vec<String>,
    /// The end of the child's stderr.
    pub stderr_tail: String,
    /// The case file (kept for failing cases).
    pub file: PathBuf,
}

/// The counts of a campaign.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Tally {
    /// Cases tried.
    pub cases: usize,
    /// Accepted by `validate`.
    pub valid: usize,
    /// Rejected by `validate` with exit 2.
    pub rejected: usize,
    /// Panics.
    pub panics: usize,
    /// Aborts and kills.
    pub aborts: usize,
    /// Timeouts.
    pub timeouts: usize,
    /// `validate` exit codes other than 0 and 2.
    pub unexpected_exits: usize,
    /// Accepted by `validate`, then rejected or failed by `run`.
    pub run_disagrees: usize,
    /// Accepted by `validate`, still training at the time limit (not a failure).
    pub run_timeouts: usize,
    /// Pipelines also trained by `run`.
    pub runs: usize,
    /// Wall-clock seconds of the campaign.
    pub seconds: f64,
    /// Every failing case.
    pub failures: Vec<FailedCase>,
}

impl Tally {
    fn add(&mut self, outcome: Outcome) {
        self.cases += 1;
        match outcome {
            Outcome::Valid => self.valid += 1,
            Outcome::Rejected => self.rejected += 1,
            Outcome::Panic => self.panics += 1,
            Outcome::Abort => self.aborts += 1,
            Outcome::Timeout => self.timeouts += 1,
            Outcome::UnexpectedExit => self.unexpected_exits += 1,
            Outcome::RunDisagrees => self.run_disagrees += 1,
            Outcome::RunTimeout => self.run_timeouts += 1,
        }
    }

    /// Number of failing cases.
    pub fn failure_count(&self) -> usize {
        self.panics + self.aborts + self.timeouts + self.unexpected_exits + self.run_disagrees
    }
}

/// Every `.json` pipeline under `dir` (recursively), parsed, sorted by path.
pub fn load_bases(dir: &Path) -> std::io::Result<Vec<Value>> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "json") {
                files.push(path);
            }
        }
    }
    files.sort();
    let mut bases = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f)?;
        let mut value: Value = serde_json::from_str(&text)
            .map_err(|e| std::io::Error::other(format!("{}: {e}", f.display())))?;
        // Relative data paths in an example are relative to its folder.
        absolutize_paths(&mut value, f.parent().unwrap_or(Path::new(".")));
        bases.push(value);
    }
    Ok(bases)
}

fn absolutize_paths(value: &mut Value, dir: &Path) {
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                match v {
                    Value::String(s) if k == "path" && !Path::new(s.as_str()).is_absolute() => {
                        *s = dir.join(s.as_str()).display().to_string();
                    }
                    _ => absolutize_paths(v, dir),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| absolutize_paths(v, dir)),
        _ => {}
    }
}

/// One mutated pipeline: the JSON text (possibly invalid JSON) and what was done to it.
pub fn mutate(bases: &[Value], names: &[String], seed: u64, case: usize) -> (String, Vec<String>) {
    let mut rng = SeededRng::new(seed).derive(&format!("fuzz/case/{case}"));
    let mut value = bases[rng.below(bases.len().max(1))].clone();
    let mut done = Vec::new();
    let count = 1 + rng.below(3);
    let mut duplicate: Option<String> = None;
    for _ in 0..count {
        let paths = all_paths(&value);
        if paths.is_empty() {
            break;
        }
        let path = paths[rng.below(paths.len())].clone();
        let label = path.join(".");
        match rng.below(8) {
            0 => {
                remove(&mut value, &path);
                done.push(format!("remove {label}"));
            }
            1 => {
                rename(&mut value, &path);
                done.push(format!("rename {label}"));
            }
            2 | 3 => {
                let replacement = replacement(&mut rng, names);
                done.push(format!("set {label} = {}", short(&replacement)));
                set(&mut value, &path, replacement);
            }
            4 => {
                let scale = [1e-9, 1e-3, -1.0, 1e3, 1e6, 1e9, 1e18][rng.below(7)];
                if scale_number(&mut value, &path, scale) {
                    done.push(format!("scale {label} by {scale}"));
                }
            }
            5 => {
                if let Some(key) = path.last().filter(|k| k.parse::<usize>().is_err()) {
                    done.push(format!("duplicate key {label}"));
                    duplicate = Some(key.clone());
                }
            }
            6 => {
                let name = names[rng.below(names.len().max(1))].clone();
                done.push(format!("set {label} = {{type: {name}}}"));
                set(&mut value, &path, json!({ "type": name }));
            }
            _ => {
                let replacement = replacement(&mut rng, names);
                done.push(format!("insert {label}_x = {}", short(&replacement)));
                insert_sibling(&mut value, &path, replacement);
            }
        }
    }
    let mut text = serde_json::to_string_pretty(&value).unwrap_or_default();
    if let Some(key) = duplicate {
        text = duplicate_key(&text, &key);
    }
    if rng.below(40) == 0 && !text.is_empty() {
        let cut = rng.below(text.len());
        let cut = (0..=cut)
            .rev()
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(0);
        text.truncate(cut);
        done.push(format!("truncate at byte {cut}"));
    }
    (text, done)
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 60 {
        let head: String = s.chars().take(40).collect();
        format!("{head}... ({} bytes)", s.len())
    } else {
        s
    }
}

/// The registered names of the plugin kinds a pipeline names by `"type"`.
pub fn registered_names() -> Vec<String> {
    fn of<K: Kind>(out: &mut Vec<String>) {
        if let Ok(entries) = registry::entries::<K>() {
            out.extend(entries.iter().map(|e| e.name.to_string()));
        }
    }
    let mut names = Vec::new();
    of::<registry::OptimizerKind>(&mut names);
    of::<registry::ScheduleKind>(&mut names);
    of::<registry::RegularizerKind>(&mut names);
    of::<registry::InitializerKind>(&mut names);
    of::<registry::LayerKind>(&mut names);
    of::<registry::NormalizationKind>(&mut names);
    of::<registry::PreprocessorKind>(&mut names);
    of::<registry::ImageAugmentationKind>(&mut names);
    of::<registry::DataSourceKind>(&mut names);
    of::<registry::BatchingKind>(&mut names);
    names.sort();
    names.dedup();
    names
}

fn replacement(rng: &mut SeededRng, names: &[String]) -> Value {
    match rng.below(18) {
        0 => Value::Null,
        1 => json!(-1),
        2 => json!(0),
        3 => json!(1),
        4 => json!(-0.5),
        5 => json!(0.5),
        6 => json!(1e9),
        7 => json!(1e300),
        8 => json!(9223372036854775808u64),
        9 => json!(4294967296u64),
        10 => json!("x"),
        11 => json!([]),
        12 => json!({}),
        13 => json!(true),
        14 => json!(names
            .get(rng.below(names.len().max(1)))
            .cloned()
            .unwrap_or_default()),
        15 => Value::String("é".repeat(20_000)),
        16 => (0..64).fold(json!(1), |inner, _| json!([inner])),
        _ => json!(["*", "**", "layers.*"]),
    }
}

fn all_paths(value: &Value) -> Vec<Vec<String>> {
    fn walk(v: &Value, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        let children: Vec<(String, &Value)> = match v {
            Value::Object(m) => m.iter().map(|(k, v)| (k.clone(), v)).collect(),
            Value::Array(a) => a
                .iter()
                .enumerate()
                .map(|(i, v)| (i.to_string(), v))
                .collect(),
            _ => return,
        };
        for (key, child) in children {
            prefix.push(key);
            out.push(prefix.clone());
            walk(child, prefix, out);
            prefix.pop();
        }
    }
    let mut out = Vec::new();
    walk(value, &mut Vec::new(), &mut out);
    out
}

fn parent_mut<'a>(root: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    let mut node = root;
    for key in &path[..path.len().saturating_sub(1)] {
        node = match node {
            Value::Object(m) => m.get_mut(key)?,
            Value::Array(a) => a.get_mut(key.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(node)
}

fn remove(root: &mut Value, path: &[String]) {
    let Some(last) = path.last() else { return };
    match parent_mut(root, path) {
        Some(Value::Object(m)) => {
            m.remove(last);
        }
        Some(Value::Array(a)) => {
            if let Ok(i) = last.parse::<usize>() {
                if i < a.len() {
                    a.remove(i);
                }
            }
        }
        _ => {}
    }
}

fn rename(root: &mut Value, path: &[String]) {
    let Some(last) = path.last() else { return };
    if let Some(Value::Object(m)) = parent_mut(root, path) {
        if let Some(v) = m.remove(last) {
            m.insert(format!("{last}s"), v);
        }
    }
}

fn set(root: &mut Value, path: &[String], value: Value) {
    let Some(last) = path.last() else { return };
    match parent_mut(root, path) {
        Some(Value::Object(m)) => {
            m.insert(last.clone(), value);
        }
        Some(Value::Array(a)) => {
            if let Some(slot) = last.parse::<usize>().ok().and_then(|i| a.get_mut(i)) {
                *slot = value;
            }
        }
        _ => {}
    }
}

fn insert_sibling(root: &mut Value, path: &[String], value: Value) {
    let Some(last) = path.last() else { return };
    match parent_mut(root, path) {
        Some(Value::Object(m)) => {
            m.insert(format!("{last}_x"), value);
        }
        Some(Value::Array(a)) => a.push(value),
        _ => {}
    }
}

fn scale_number(root: &mut Value, path: &[String], scale: f64) -> bool {
    let Some(last) = path.last() else {
        return false;
    };
    let slot = match parent_mut(root, path) {
        Some(Value::Object(m)) => m.get_mut(last),
        Some(Value::Array(a)) => last.parse::<usize>().ok().and_then(|i| a.get_mut(i)),
        _ => None,
    };
    match slot {
        Some(v @ Value::Number(_)) => {
            let x = v.as_f64().unwrap_or(0.0) * scale;
            *v = if x.fract() == 0.0 && x.abs() < 1e19 && x >= 0.0 {
                json!(x as u64)
            } else {
                json!(x)
            };
            true
        }
        _ => false,
    }
}

/// Repeats the first `"key":` member of the text with the value `"sgd"` in front of it.
fn duplicate_key(text: &str, key: &str) -> String {
    let needle = format!("\"{key}\":");
    match text.find(&needle) {
        Some(at) => format!("{}{needle} \"sgd\", {}", &text[..at], &text[at..]),
        None => text.to_string(),
    }
}

/// How a child process ended.
enum Ending {
    Exited(i32),
    Signalled,
    TimedOut,
}

struct Child {
    ending: Ending,
    stderr_tail: String,
}

fn run_child(exe: &Path, args: &[&str], campaign: &Campaign) -> std::io::Result<Child> {
    let stderr_file = tempfile::NamedTempFile::new_in(&campaign.work_dir)?;
    let mut command = limited(exe, args, campaign.memory_limit);
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr_file.reopen()?)
        .env("RUST_BACKTRACE", "0");
    let mut child = command.spawn()?;
    let started = Instant::now();
    let ending = loop {
        if let Some(status) = child.try_wait()? {
            break ending_of(status);
        }
        if started.elapsed() > campaign.timeout {
            let _ = child.kill();
            let _ = child.wait();
            break Ending::TimedOut;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let stderr = std::fs::read_to_string(stderr_file.path()).unwrap_or_default();
    let tail: String = stderr
        .chars()
        .rev()
        .take(600)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    Ok(Child {
        ending,
        stderr_tail: tail,
    })
}

fn ending_of(status: ExitStatus) -> Ending {
    match status.code() {
        Some(code) => Ending::Exited(code),
        None => Ending::Signalled,
    }
}

/// The command that runs `exe args` under an address-space limit: through `sh`'s `ulimit -v`
/// on unix (no `unsafe` `pre_exec` needed), unlimited elsewhere.
fn limited(exe: &Path, args: &[&str], bytes: u64) -> Command {
    if cfg!(unix) {
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(format!("ulimit -v {} && exec \"$0\" \"$@\"", bytes / 1024))
            .arg(exe)
            .args(args);
        command
    } else {
        let mut command = Command::new(exe);
        command.args(args);
        command
    }
}

fn outcome_of(ending: &Ending, accepted: &[i32]) -> Option<Outcome> {
    match ending {
        Ending::Exited(101) => Some(Outcome::Panic),
        Ending::Signalled => Some(Outcome::Abort),
        Ending::TimedOut => Some(Outcome::Timeout),
        Ending::Exited(code) if accepted.contains(code) => None,
        Ending::Exited(_) => Some(Outcome::UnexpectedExit),
    }
}

/// One case tried.
struct Tried {
    outcome: Outcome,
    /// The report entry of a failing case.
    failed: Option<FailedCase>,
    /// `run` was tried too.
    ran: bool,
}

/// Tries case `case`: `validate`, then (if accepted and asked for) a short `run`.
fn try_case(campaign: &Campaign, names: &[String], case: usize) -> std::io::Result<Tried> {
    let (text, mutations) = mutate(&campaign.bases, names, campaign.seed, case);
    let file = campaign.work_dir.join(format!("case-{case}.json"));
    std::fs::write(&file, &text)?;
    let path = file.display().to_string();
    let validated = run_child(&campaign.exe, &["validate", &path], campaign)?;
    let mut ran = false;
    let (outcome, stderr_tail) = match outcome_of(&validated.ending, &[0, 2]) {
        Some(failure) => (failure, validated.stderr_tail),
        None if matches!(validated.ending, Ending::Exited(2)) => (Outcome::Rejected, String::new()),
        None if campaign.run_valid => {
            ran = true;
            let short_file = campaign.work_dir.join(format!("case-{case}-run.json"));
            let mut value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            cap_epochs(&mut value, campaign.run_epochs);
            std::fs::write(&short_file, value.to_string())?;
            let out = campaign.work_dir.join(format!("run-{case}"));
            let args = [
                "run",
                &*short_file.display().to_string(),
                "--out",
                &*out.display().to_string(),
                "--quiet",
            ]
            .map(String::from);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let trained = run_child(&campaign.exe, &args, campaign)?;
            let _ = std::fs::remove_dir_all(&out);
            let _ = std::fs::remove_file(&short_file);
            // 3: stopped at a non-finite loss, as asked (`terminate_on_non_finite`).
            match outcome_of(&trained.ending, &[0, 3]) {
                None => (Outcome::Valid, String::new()),
                Some(Outcome::UnexpectedExit) => (Outcome::RunDisagrees, trained.stderr_tail),
                Some(Outcome::Timeout) => (Outcome::RunTimeout, String::new()),
                Some(failure) => (failure, trained.stderr_tail),
            }
        }
        None => (Outcome::Valid, String::new()),
    };
    if !outcome.is_failure() {
        let _ = std::fs::remove_file(&file);
        return Ok(Tried {
            outcome,
            failed: None,
            ran,
        });
    }
    let failed = FailedCase {
        case,
        outcome,
        mutations,
        stderr_tail,
        file,
    };
    Ok(Tried {
        outcome,
        failed: Some(failed),
        ran,
    })
}

/// The epochs of a pipeline to run, at most `cap` (a mutation may have asked for 1e18).
fn cap_epochs(value: &mut Value, cap: usize) {
    if let Some(train) = value.get_mut("train").and_then(Value::as_object_mut) {
        let epochs = train.get("epochs").and_then(Value::as_u64).unwrap_or(1);
        train.insert("epochs".into(), json!(epochs.min(cap as u64)));
    }
}

/// Runs the campaign: `cases` mutated pipelines over `jobs` threads; returns the counts and
/// the failing cases (sorted by case number).
pub fn run(campaign: &Campaign) -> std::io::Result<Tally> {
    let started = Instant::now();
    std::fs::create_dir_all(&campaign.work_dir)?;
    let names = registered_names();
    let jobs = campaign.jobs.max(1);
    let results: Vec<std::io::Result<Vec<Tried>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..jobs)
            .map(|job| {
                let names = &names;
                scope.spawn(move || {
                    (job..campaign.cases)
                        .step_by(jobs)
                        .map(|case| try_case(campaign, names, case))
                        .collect::<std::io::Result<Vec<_>>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(std::io::Error::other("a fuzz worker panicked")))
            })
            .collect()
    });
    let mut tally = Tally::default();
    for job in results {
        for tried in job? {
            tally.add(tried.outcome);
            tally.runs += usize::from(tried.ran);
            tally.failures.extend(tried.failed);
        }
    }
    tally.failures.sort_by_key(|f| f.case);
    tally.seconds = started.elapsed().as_secs_f64();
    Ok(tally)
}
