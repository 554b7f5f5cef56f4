//! The small statistics of Pol.is's `math/stats.clj` and `repness.clj`, kept formula for formula
//! so results can be compared with Pol.is's.

/// One-sided z for 90 % confidence (Pol.is `z-sig-90?`).
pub const Z90: f64 = 1.2816;

/// Laplace-smoothed probability of `k` successes in `n` trials: (k + 1) / (n + 2). With no votes
/// it is ½, and a handful of votes cannot reach 0 or 1.
pub fn smoothed(k: u32, n: u32) -> f64 {
    (k as f64 + 1.0) / (n as f64 + 2.0)
}

/// Pol.is `prop-test`: a z-like score of `succ` out of `n` being above ½, with the +1 prior.
pub fn prop_test(succ: u32, n: u32) -> f64 {
    let (s, n) = (succ as f64 + 1.0, n as f64 + 1.0);
    2.0 * n.sqrt() * (s / n - 0.5)
}

/// Pol.is `two-prop-test`: z of the proportion `succ_in / pop_in` being above
/// `succ_out / pop_out`, with +1 priors.
pub fn two_prop_test(succ_in: u32, succ_out: u32, pop_in: u32, pop_out: u32) -> f64 {
    let (si, so, pi, po) = (
        succ_in as f64 + 1.0,
        succ_out as f64 + 1.0,
        pop_in as f64 + 1.0,
        pop_out as f64 + 1.0,
    );
    let (p1, p2) = (si / pi, so / po);
    let p = (si + so) / (pi + po);
    let var = p * (1.0 - p) * (1.0 / pi + 1.0 / po);
    if var <= 0.0 { 0.0 } else { (p1 - p2) / var.sqrt() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tests_match_polis_on_known_values() {
        // (prop-test 9 10) = 2 * sqrt(11) * (10/11 - 0.5)
        assert!((prop_test(9, 10) - 2.0 * 11f64.sqrt() * (10.0 / 11.0 - 0.5)).abs() < 1e-12);
        // No votes: Pol.is's +1 prior makes it 2·1·(1 − ½) = 1.
        assert_eq!(prop_test(0, 0), 1.0);
        assert!(two_prop_test(9, 1, 10, 10) > Z90);
        assert!(two_prop_test(1, 9, 10, 10) < -Z90);
        assert_eq!(two_prop_test(0, 0, 0, 0), 0.0);
        assert_eq!(smoothed(0, 0), 0.5);
    }
}
