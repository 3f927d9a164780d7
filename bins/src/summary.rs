//! Medians and spreads of repeated measurements, and the machine they were taken on.

/// Median of `xs` (mean of the middle two for an even count); `None` when empty.
pub fn median(xs: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// Smallest and largest of `xs`.
pub fn range(xs: &[f64]) -> Option<(f64, f64)> {
    let v = xs.iter().copied().filter(|x| x.is_finite());
    let min = v.clone().reduce(f64::min)?;
    let max = v.reduce(f64::max)?;
    Some((min, max))
}

/// `median [min–max]` with `digits` decimals, or `–`.
pub fn median_range(xs: &[f64], digits: usize) -> String {
    match (median(xs), range(xs)) {
        (Some(m), Some((lo, hi))) => format!("{m:.digits$} [{lo:.digits$}–{hi:.digits$}]"),
        _ => "–".into(),
    }
}

/// The CPU model name from /proc/cpuinfo.
pub fn cpu_model() -> String {
    engine::host::cpu_model().unwrap_or_else(|| "unknown CPU".into())
}

/// One line about the machine: CPU model, cores, kernel.
pub fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!(
        "{}, {cores} cores, Linux {}",
        cpu_model(),
        engine::kernel_release()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_ranges() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        assert_eq!(range(&[2.0, 5.0, 1.0]), Some((1.0, 5.0)));
        assert_eq!(median_range(&[1.0, 2.0, 3.0], 1), "2.0 [1.0–3.0]");
        assert_eq!(median_range(&[], 1), "–");
    }
}
