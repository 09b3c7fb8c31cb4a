//! The report: `docs/benchmarks.md` and its SVG charts, written from
//! `results.json` (and criterion's estimates) — every number in it comes from
//! one run, and every comparison is a ratio of figures from that same run.
//!
//! Layout: this module reads the inputs, writes the files and renders the
//! header; `summary` renders the summary table of targets, `protocol` the
//! sections measured on the core, the gateway and the wire (1–5), `apps` those
//! of the apps (6–7), `store` the cache's cost per event by cache size, then
//! (`apps`) the micro-benchmarks and how to run. Each section
//! says "not measured" rather than leaving a gap when its benchmark did not run.

mod apps;
mod cluster;
mod protocol;
mod store;
mod summary;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::cluster::ClusterResult;
use crate::desktop::{DesktopResult, Figure};
use crate::fanout::FanoutResult;
use crate::harness::Mode;
use crate::ingest::{self, IngestResult};
use crate::latency::LatencyResult;
use crate::machine::Machine;
use crate::pulsectl::PulsectlResult;
use crate::requests::RequestsResult;
use crate::resync::ResyncResult;
use crate::svg::fmt_num;
use crate::workload::Size;

/// Everything one run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Results {
    /// Run size.
    pub mode: Mode,
    /// Where.
    pub machine: Machine,
    /// When it started.
    pub started_at: String,
    /// When it ended.
    pub finished_at: String,
    /// Benchmark 1.
    pub ingest: Option<IngestResult>,
    /// Benchmark 2.
    pub latency: Option<LatencyResult>,
    /// Benchmark 3.
    pub fanout: Option<FanoutResult>,
    /// Benchmark 4.
    pub resync: Option<ResyncResult>,
    /// Benchmark 5.
    pub requests: Option<RequestsResult>,
    /// Benchmark 6.
    pub desktop: Option<DesktopResult>,
    /// Benchmark 7.
    pub pulsectl: Option<PulsectlResult>,
    /// Benchmark 8.
    #[serde(default)]
    pub cluster: Option<ClusterResult>,
    /// Benchmarks that failed, with why.
    pub failures: Vec<String>,
    /// How busy the rest of the machine was during each benchmark.
    #[serde(default)]
    pub load: Vec<LoadNote>,
}

/// CPU used by other processes around one benchmark.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LoadNote {
    /// Benchmark.
    pub bench: String,
    /// Other processes' cores just before it started (after waiting for quiet).
    pub before_cores: f64,
    /// Other processes' average cores while it ran.
    pub during_cores: f64,
    /// Seconds it took.
    pub seconds: f64,
}

impl Default for Results {
    fn default() -> Self {
        Results {
            mode: Mode::Quick,
            machine: Machine::default(),
            started_at: String::new(),
            finished_at: String::new(),
            ingest: None,
            latency: None,
            fanout: None,
            resync: None,
            requests: None,
            desktop: None,
            pulsectl: None,
            cluster: None,
            failures: Vec::new(),
            load: Vec::new(),
        }
    }
}

/// Arguments of `pulse-bench report`.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// results.json of a run.
    #[arg(long)]
    results: PathBuf,
    /// Criterion's output directory (`$CARGO_TARGET_DIR/criterion`), if the
    /// micro-benchmarks ran.
    #[arg(long)]
    criterion: Option<PathBuf>,
    /// Markdown file to write.
    #[arg(long)]
    markdown: PathBuf,
    /// Directory for the SVG charts (linked relative to the Markdown file).
    #[arg(long)]
    charts: PathBuf,
    /// Hand-written analysis (Markdown) to include after the summary, if the file
    /// exists (`benches/analysis.md`).
    #[arg(long)]
    analysis: Option<PathBuf>,
}

/// One criterion benchmark.
#[derive(Debug, Clone)]
pub struct Micro {
    /// `group/function/param`.
    pub id: String,
    /// Median time per iteration, ns.
    pub median_ns: f64,
    /// Elements per iteration, if declared.
    pub elements: Option<u64>,
    /// Bytes per iteration, if declared.
    pub bytes: Option<u64>,
}

/// Read every `new/benchmark.json` + `new/estimates.json` under `dir`.
pub fn read_criterion(dir: &Path) -> Vec<Micro> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n == "new") {
                    if let Some(m) = read_micro(&p) {
                        out.push(m);
                    }
                } else if p.file_name().is_none_or(|n| n != "report") {
                    stack.push(p);
                }
            }
        }
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

fn read_micro(dir: &Path) -> Option<Micro> {
    let bench: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("benchmark.json")).ok()?).ok()?;
    let est: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("estimates.json")).ok()?).ok()?;
    Some(Micro {
        id: bench["full_id"].as_str()?.to_owned(),
        median_ns: est["median"]["point_estimate"].as_f64()?,
        elements: bench["throughput"]["Elements"].as_u64(),
        bytes: bench["throughput"]["Bytes"].as_u64(),
    })
}

fn mib(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= 1024.0 * 1024.0 {
        format!("{:.2} MiB", b / 1024.0 / 1024.0)
    } else {
        format!("{:.1} KiB", b / 1024.0)
    }
}

fn time_ns(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

fn find<'a>(r: &'a IngestResult, client: &str, size: Size) -> Option<&'a ingest::Row> {
    r.rows
        .iter()
        .find(|x| x.client == client && x.size == size && x.skipped.is_none())
}

fn figure_text(f: &Figure, unit: &str) -> String {
    match f.value {
        Some(v) => format!("{} {unit}", fmt_num(v)),
        None => "not measured".into(),
    }
}

/// Write the report.
pub fn write(args: ReportArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.results)
        .with_context(|| format!("cannot read {}", args.results.display()))?;
    let r: Results = serde_json::from_str(&text)?;
    let micro = args
        .criterion
        .as_deref()
        .map(read_criterion)
        .unwrap_or_default();
    std::fs::create_dir_all(&args.charts)?;
    let md_dir = args
        .markdown
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let rel = pathdiff(&args.charts, &md_dir);
    let mut charts: Vec<(String, String)> = Vec::new();
    let mut md = render(&r, &micro, &rel, &mut charts);
    if let Some(text) = args
        .analysis
        .as_deref()
        .and_then(|p| std::fs::read_to_string(p).ok())
    {
        // After the summary table, before section 1.
        let at = md.find("\n## 1. ").map(|i| i + 1).unwrap_or(md.len());
        md.insert_str(at, &format!("{}\n\n", text.trim_end()));
    }
    for (name, svg) in &charts {
        std::fs::write(args.charts.join(name), svg)?;
    }
    if let Some(dir) = args.markdown.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.markdown, md)?;
    eprintln!(
        "wrote {} and {} charts in {}",
        args.markdown.display(),
        charts.len(),
        args.charts.display()
    );
    Ok(())
}

/// `charts` relative to `base` (both as given; good enough for docs/ + docs/benchmarks).
fn pathdiff(charts: &Path, base: &Path) -> String {
    let c = charts
        .canonicalize()
        .unwrap_or_else(|_| charts.to_path_buf());
    let b = base.canonicalize().unwrap_or_else(|_| base.to_path_buf());
    match c.strip_prefix(&b) {
        Ok(p) => p.display().to_string(),
        Err(_) => c.display().to_string(),
    }
}

/// Render the Markdown; pushes (file name, SVG) pairs onto `charts`.
pub fn render(
    r: &Results,
    micro: &[Micro],
    chart_dir: &str,
    charts: &mut Vec<(String, String)>,
) -> String {
    let mut md = String::new();
    let mut chart = |name: &str, svg: String, alt: &str| -> String {
        charts.push((format!("{name}.svg"), svg));
        let path = if chart_dir.is_empty() {
            format!("{name}.svg")
        } else {
            format!("{chart_dir}/{name}.svg")
        };
        format!("![{alt}]({path})\n")
    };
    let m = &r.machine;
    let _ = writeln!(md, "# Pulse benchmarks\n");
    let _ = writeln!(
        md,
        "Written by `./scripts/bench.sh` (mode `{}`) from one run, {} – {}. Every figure below \
         comes from that run; comparisons are ratios of figures measured in it, on this machine:\n",
        format!("{:?}", r.mode).to_lowercase(),
        r.started_at,
        r.finished_at
    );
    let _ = writeln!(md, "- **Machine**: {}", m.line());
    let _ = writeln!(md, "- **Build**: {}", m.profile);
    let _ = writeln!(
        md,
        "- **Loads** target loopback only (127.0.0.0/8), are bounded in count and time, and share the \
         machine's {} cores with whatever they measure unless a section says how processes were pinned.\n",
        m.cores
    );
    if !r.load.is_empty() {
        let busy: Vec<&LoadNote> = r.load.iter().filter(|l| l.during_cores > 0.25).collect();
        let _ = writeln!(
            md,
            "- **Other processes** on the machine (this harness and its children excluded; from \
             `/proc/stat`; processes the harness's children start and do not wait for, such as the \
             desktop app's WebKit processes, count as other): each benchmark waited up to a minute \
             for them to use under 0.25 cores, then ran. {}\n",
            if busy.is_empty() {
                "They stayed under 0.25 cores throughout.".to_string()
            } else {
                format!(
                    "They used more while these ran, so those figures may be pessimistic: {}.",
                    busy.iter()
                        .map(|l| {
                            if l.bench == "desktop" {
                                format!(
                                    "desktop ({:.2} cores on average, which includes the app's own WebKit processes: the machine was quiet before it started)",
                                    l.during_cores
                                )
                            } else {
                                format!("{} ({:.2} cores on average)", l.bench, l.during_cores)
                            }
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        );
    }
    if !r.failures.is_empty() {
        let _ = writeln!(
            md,
            "**Benchmarks that failed in this run** (their sections say so):\n"
        );
        for f in &r.failures {
            let _ = writeln!(md, "- `{}`", f.replace('\n', " "));
        }
        let _ = writeln!(md);
    }

    summary::summary(&mut md, r);
    protocol::ingest(&mut md, r, &mut chart);
    protocol::latency(&mut md, r, &mut chart);
    protocol::fanout(&mut md, r, &mut chart);
    protocol::resync(&mut md, r, &mut chart);
    protocol::requests(&mut md, r, &mut chart);
    apps::desktop(&mut md, r, &mut chart);
    apps::pulsectl(&mut md, r, &mut chart);
    cluster::cluster(&mut md, r);
    store::scaling(&mut md, micro, &mut chart);
    apps::micro(&mut md, micro);
    apps::how(&mut md);
    md
}

/// How a section adds a chart: (file name without `.svg`, SVG, alt text) → the
/// Markdown image line.
type Chart<'a> = dyn FnMut(&str, String, &str) -> String + 'a;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_an_empty_run() {
        let mut charts = Vec::new();
        let md = render(&Results::default(), &[], "benchmarks", &mut charts);
        assert!(md.starts_with("# Pulse benchmarks"));
        assert!(md.contains("## Summary"));
        assert!(charts.is_empty());
    }
}
