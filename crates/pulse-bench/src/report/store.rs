//! The cache's cost per event as it grows: `store_scale/sqlite_batch_100/N` of the
//! criterion run (`crates/pulse-core/benches/core.rs`), one table and one chart.
//! Its own section so that it renders from the micro-benchmarks alone and says
//! "not measured" when they did not run.

use std::fmt::Write as _;

use super::{time_ns, Chart, Micro};
use crate::svg::{fmt_num, BarChart};

/// Criterion id prefix of the scaling points; the suffix is the entity count.
const PREFIX: &str = "store_scale/sqlite_batch_100/";

/// The per-event target for the SQLite store (issue 12), µs.
const TARGET_US: f64 = 3.0;

/// (entities, µs per event) of each point measured, by entity count.
pub(super) fn points(micro: &[Micro]) -> Vec<(u64, f64)> {
    let mut out: Vec<(u64, f64)> = micro
        .iter()
        .filter_map(|m| {
            let n = m.id.strip_prefix(PREFIX)?.parse::<u64>().ok()?;
            let per = m.elements.filter(|&e| e > 0)?;
            Some((n, m.median_ns / per as f64 / 1e3))
        })
        .collect();
    out.sort_by_key(|p| p.0);
    out
}

/// "Store apply cost per event as the cache grows".
pub(super) fn scaling(md: &mut String, micro: &[Micro], chart: &mut Chart<'_>) {
    let _ = writeln!(md, "## Store apply cost per event as the cache grows\n");
    let _ = writeln!(
        md,
        "**What**: the SQLite cache's cost per event (one transaction per batch of 100 \
         heartbeat-like patches, each to an agent picked across the whole cache, so most \
         miss the store's entity cache) when it holds 10,000, 100,000 and 1,000,000 entities. \
         **How**: criterion, `store_scale/sqlite_batch_100/N` in \
         `cargo bench -p pulse-core --bench core`; each cache is filled in one SQL transaction \
         before its point is measured. Same run as the micro-benchmarks below.\n"
    );
    let pts = points(micro);
    if pts.is_empty() {
        let _ = writeln!(
            md,
            "Not measured in this run: no `store_scale` estimates (the criterion \
             micro-benchmarks did not run, or ran in test mode).\n"
        );
        return;
    }
    let _ = writeln!(
        md,
        "| Entities in the cache | Per batch of 100 | Per event | Events/s |\n|---|---|---|---|"
    );
    for (n, us) in &pts {
        let _ = writeln!(
            md,
            "| {} | {} | {:.2} µs | {} |",
            fmt_num(*n as f64),
            time_ns(us * 1e3 * 100.0),
            us,
            fmt_num(1e6 / us)
        );
    }
    if let (Some(first), Some(last)) = (pts.first(), pts.last()) {
        if pts.len() > 1 {
            let _ = writeln!(
                md,
                "\nFrom {} to {} entities the cost per event changes ×{:.2}.",
                fmt_num(first.0 as f64),
                fmt_num(last.0 as f64),
                last.1 / first.1
            );
        }
    }
    let rows: Vec<(String, Option<f64>)> = pts
        .iter()
        .map(|(n, us)| (format!("{} entities", fmt_num(*n as f64)), Some(*us)))
        .collect();
    let mut bars = BarChart::simple("Store apply, µs per event, by cache size", "µs", &rows);
    bars.target = Some((TARGET_US, format!("target {TARGET_US} µs")));
    let _ = writeln!(
        md,
        "\n{}",
        chart(
            "store-scale",
            bars.render(),
            "Store apply cost per event by cache size"
        )
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn micro(id: &str, ns: f64) -> Micro {
        Micro {
            id: id.into(),
            median_ns: ns,
            elements: Some(100),
            bytes: None,
        }
    }

    #[test]
    fn reads_the_points_and_draws_one_chart() {
        let m = [
            micro("store_scale/sqlite_batch_100/1000000", 400_000.0),
            micro("store_scale/sqlite_batch_100/10000", 200_000.0),
            micro("store_apply/sqlite/batch_100", 1.0),
            micro("store_scale/sqlite_batch_100/garbage", 1.0),
        ];
        assert_eq!(points(&m), vec![(10_000, 2.0), (1_000_000, 4.0)]);
        let mut charts = Vec::new();
        let mut md = String::new();
        scaling(&mut md, &m, &mut |name: &str, svg: String, _alt: &str| {
            charts.push((name.to_owned(), svg));
            format!("![]({name}.svg)")
        });
        assert!(md.contains("| 10,000 | 200.00 µs | 2.00 µs |"), "{md}");
        assert!(md.contains("×2.00"));
        assert_eq!(charts.len(), 1);
        assert!(charts[0].1.starts_with("<svg"));
    }

    #[test]
    fn says_not_measured_without_points() {
        let mut md = String::new();
        scaling(&mut md, &[], &mut |_: &str, _: String, _: &str| {
            String::new()
        });
        assert!(md.contains("Not measured"));
    }
}
