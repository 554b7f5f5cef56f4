//! The 2-D opinion space: principal components of the vote matrix, as Pol.is computes them
//! (`math/pca.clj`), arranged so that the cost follows the votes rather than the matrix size.
//!
//! Pol.is replaces a missing vote by the statement's mean and centres the columns; a missing
//! vote then becomes exactly 0, so the centred matrix is as sparse as the votes. Its covariance
//! `C = XᵀX / n` (statements × statements) is accumulated from each row's pairs of votes in
//! **integers** — the count of rows voting both statements, the sum of the products and the two
//! sums — and only then turned into floating point. The result is exact and does not depend on
//! the order of the rows, which is what makes group assignment a function of the votes and the
//! seed alone. Cost: Σ (votes per row)² / 2 small additions (6 M for 100k rows of 10 votes).
//!
//! The top two eigenvectors of the small dense `C` come from subspace iteration with a block of
//! four vectors and a Rayleigh–Ritz step (power iteration generalised: the top-2 space converges
//! at the rate λ₅/λ₂ instead of λ₂/λ₁, so two nearly equal components do not slow it down).
//! Each iteration costs 4 d² multiply-adds (160 k for 200 statements).
//!
//! A participant is projected from its own votes only, scaled by √(statements / votes) as in
//! Pol.is's `sparsity-aware-project-ptpt`, so someone who voted on few statements is not pulled
//! into the centre merely for having voted little.

use rand_xoshiro::Xoshiro256PlusPlus;
use rand_xoshiro::rand_core::{RngCore, SeedableRng};

/// Block size of the subspace iteration.
const BLOCK: usize = 4;

/// Pair sums of the centred covariance, from integer counters.
pub(crate) struct CoVotes {
    d: usize,
    /// Per (a, b), a ≤ b, row-major upper triangle in a full d×d layout:
    /// [rows voting both, Σ v_a v_b, Σ v_a, Σ v_b].
    sums: Vec<[i64; 4]>,
    rows: u64,
}

impl CoVotes {
    pub fn new(d: usize) -> Self {
        CoVotes { d, sums: vec![[0; 4]; d * d], rows: 0 }
    }

    /// Adds one counted row: its (column, value) pairs sorted by column.
    pub fn add_row(&mut self, row: &[(u32, i8)]) {
        self.rows += 1;
        for (i, &(a, va)) in row.iter().enumerate() {
            let base = a as usize * self.d;
            for &(b, vb) in &row[i..] {
                let s = &mut self.sums[base + b as usize];
                s[0] += 1;
                s[1] += (va * vb) as i64;
                s[2] += va as i64;
                s[3] += vb as i64;
            }
        }
    }

    /// Column means over counted rows that voted the column (`None`-votes excluded).
    pub fn means(&self) -> Vec<f64> {
        (0..self.d)
            .map(|a| {
                let s = self.sums[a * self.d + a];
                if s[0] == 0 { 0.0 } else { s[2] as f64 / s[0] as f64 }
            })
            .collect()
    }

    /// The covariance of the mean-imputed, centred matrix (divided by the counted rows).
    pub fn covariance(&self, mean: &[f64]) -> Vec<f64> {
        let d = self.d;
        let n = self.rows.max(1) as f64;
        let mut c = vec![0.0; d * d];
        for a in 0..d {
            for b in a..d {
                let [k, s, ta, ub] = self.sums[a * d + b];
                let v = (s as f64 - mean[b] * ta as f64 - mean[a] * ub as f64
                    + mean[a] * mean[b] * k as f64)
                    / n;
                c[a * d + b] = v;
                c[b * d + a] = v;
            }
        }
        c
    }
}

/// The top two principal components.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Components {
    /// Unit vectors over the counted columns.
    pub axes: [Vec<f64>; 2],
    /// Their eigenvalues (variance along them).
    pub variance: [f64; 2],
    /// Iterations used.
    pub iterations: u32,
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn matvec(c: &[f64], d: usize, v: &[f64], out: &mut [f64]) {
    for (i, o) in out.iter_mut().enumerate() {
        *o = dot(&c[i * d..(i + 1) * d], v);
    }
}

/// Orthonormalises `vs` in place (modified Gram–Schmidt). A vector that collapses is replaced
/// by the first unit basis vector that is independent of the others, so the block keeps its rank.
fn orthonormalise(vs: &mut [Vec<f64>]) {
    let d = vs[0].len();
    for i in 0..vs.len() {
        let mut basis = 0;
        loop {
            for j in 0..i {
                let (head, tail) = vs.split_at_mut(i);
                let p = dot(&head[j], &tail[0]);
                for (x, y) in tail[0].iter_mut().zip(&head[j]) {
                    *x -= p * y;
                }
            }
            let n = dot(&vs[i], &vs[i]).sqrt();
            if n > 1e-10 {
                vs[i].iter_mut().for_each(|x| *x /= n);
                break;
            }
            if basis >= d {
                vs[i].iter_mut().for_each(|x| *x = 0.0);
                break;
            }
            vs[i] = (0..d).map(|k| if k == basis { 1.0 } else { 0.0 }).collect();
            basis += 1;
        }
    }
}

/// Eigen-decomposition of a small symmetric matrix (cyclic Jacobi): eigenvalues descending and
/// the eigenvectors as columns of `q` (row-major p×p).
fn jacobi(mut a: Vec<f64>, p: usize) -> (Vec<f64>, Vec<f64>) {
    let mut q: Vec<f64> = (0..p * p).map(|i| if i / p == i % p { 1.0 } else { 0.0 }).collect();
    for _sweep in 0..64 {
        let off: f64 = (0..p).flat_map(|i| (0..p).filter(move |j| *j != i).map(move |j| (i, j))).map(|(i, j)| a[i * p + j].powi(2)).sum();
        let scale: f64 = (0..p).map(|i| a[i * p + i].powi(2)).sum::<f64>() + off;
        if off <= 1e-30 * scale.max(1e-300) {
            break;
        }
        for i in 0..p {
            for j in i + 1..p {
                let aij = a[i * p + j];
                if aij.abs() < 1e-300 {
                    continue;
                }
                let theta = (a[j * p + j] - a[i * p + i]) / (2.0 * aij);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..p {
                    let (aki, akj) = (a[k * p + i], a[k * p + j]);
                    a[k * p + i] = c * aki - s * akj;
                    a[k * p + j] = s * aki + c * akj;
                }
                for k in 0..p {
                    let (aik, ajk) = (a[i * p + k], a[j * p + k]);
                    a[i * p + k] = c * aik - s * ajk;
                    a[j * p + k] = s * aik + c * ajk;
                }
                for k in 0..p {
                    let (qki, qkj) = (q[k * p + i], q[k * p + j]);
                    q[k * p + i] = c * qki - s * qkj;
                    q[k * p + j] = s * qki + c * qkj;
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..p).collect();
    order.sort_by(|x, y| a[y * p + y].total_cmp(&a[x * p + x]).then(x.cmp(y)));
    let vals = order.iter().map(|&i| a[i * p + i]).collect();
    let mut qs = vec![0.0; p * p];
    for (new, &old) in order.iter().enumerate() {
        for k in 0..p {
            qs[k * p + new] = q[k * p + old];
        }
    }
    (vals, qs)
}

/// The top two eigenvectors of the d×d symmetric `c`, starting from `start` (previous axes,
/// for a warm start and a map that does not flip between recomputes) and seeded vectors.
/// Signs: aligned with `start` when given, else the largest entry of each axis is positive.
pub(crate) fn top_two(
    c: &[f64],
    d: usize,
    start: Option<&[Vec<f64>; 2]>,
    seed: u64,
    max_iter: u32,
    tol: f64,
) -> Components {
    assert!(d >= 1);
    let p = BLOCK.min(d);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed ^ 0x9ca5_0000_0000_0001);
    let mut v: Vec<Vec<f64>> = (0..p)
        .map(|i| match start {
            Some(s) if i < 2 && s[i].len() == d => s[i].clone(),
            _ => (0..d).map(|_| (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 - 0.5).collect(),
        })
        .collect();
    orthonormalise(&mut v);
    let mut y = vec![vec![0.0; d]; p];
    let mut theta = vec![0.0; p];
    let mut iterations = 0;
    for it in 1..=max_iter.max(1) {
        iterations = it;
        for (vi, yi) in v.iter().zip(y.iter_mut()) {
            matvec(c, d, vi, yi);
        }
        // Rayleigh–Ritz: T = Vᵀ C V, rotate V and CV by its eigenvectors.
        let t: Vec<f64> = (0..p * p).map(|k| dot(&v[k / p], &y[k % p])).collect();
        let t: Vec<f64> = (0..p * p).map(|k| 0.5 * (t[k] + t[(k % p) * p + k / p])).collect();
        let (vals, q) = jacobi(t, p);
        let rotate = |m: &[Vec<f64>]| -> Vec<Vec<f64>> {
            (0..p).map(|j| (0..d).map(|r| (0..p).map(|i| m[i][r] * q[i * p + j]).sum()).collect()).collect()
        };
        v = rotate(&v);
        y = rotate(&y);
        theta = vals;
        let top = theta[0].abs().max(1e-300);
        let residual = (0..2.min(p))
            .map(|i| y[i].iter().zip(&v[i]).map(|(a, b)| (a - theta[i] * b).powi(2)).sum::<f64>().sqrt())
            .fold(0.0, f64::max);
        if residual <= tol * top || theta[0].abs() < 1e-15 {
            break;
        }
        v = y.clone();
        orthonormalise(&mut v);
    }
    let mut axes = [v[0].clone(), if p > 1 { v[1].clone() } else { vec![0.0; d] }];
    for (i, ax) in axes.iter_mut().enumerate() {
        let flip = match start {
            Some(s) if s[i].len() == d => dot(ax, &s[i]) < 0.0,
            _ => {
                let (mut best, mut at) = (0.0f64, 0usize);
                for (k, x) in ax.iter().enumerate() {
                    if x.abs() > best + 1e-12 {
                        best = x.abs();
                        at = k;
                    }
                }
                ax[at] < 0.0
            }
        };
        if flip {
            ax.iter_mut().for_each(|x| *x = -*x);
        }
    }
    Components { axes, variance: [theta[0], if p > 1 { theta[1] } else { 0.0 }], iterations }
}

/// Projects one row ((column, value) pairs over the counted columns) onto the axes, scaled by
/// √(d / votes).
pub(crate) fn project(row: &[(u32, i8)], mean: &[f64], axes: &[Vec<f64>; 2], d: usize) -> [f64; 2] {
    if row.is_empty() {
        return [0.0, 0.0];
    }
    let (mut x, mut y) = (0.0, 0.0);
    for &(c, v) in row {
        let c = c as usize;
        let dv = v as f64 - mean[c];
        x += dv * axes[0][c];
        y += dv * axes[1][c];
    }
    let s = (d as f64 / row.len() as f64).sqrt();
    [x * s, y * s]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subspace_iteration_finds_the_top_two_eigenvectors() {
        // A symmetric matrix with known eigenvalues 9, 4, 1, 0.5, 0.1 (diagonal, then rotated
        // by a fixed orthogonal matrix from Gram–Schmidt of a fixed basis).
        let d = 5;
        let vals = [0.5, 9.0, 0.1, 4.0, 1.0];
        let mut basis: Vec<Vec<f64>> = (0..d).map(|i| (0..d).map(|j| ((i * 7 + j * 3) % 11) as f64 + if i == j { 5.0 } else { 0.0 }).collect()).collect();
        orthonormalise(&mut basis);
        let mut c = vec![0.0; d * d];
        for (k, b) in basis.iter().enumerate() {
            for i in 0..d {
                for j in 0..d {
                    c[i * d + j] += vals[k] * b[i] * b[j];
                }
            }
        }
        let comps = top_two(&c, d, None, 7, 1000, 1e-12);
        assert!((comps.variance[0] - 9.0).abs() < 1e-9, "{:?}", comps.variance);
        assert!((comps.variance[1] - 4.0).abs() < 1e-9, "{:?}", comps.variance);
        assert!((dot(&comps.axes[0], &basis[1]).abs() - 1.0).abs() < 1e-9);
        assert!((dot(&comps.axes[1], &basis[3]).abs() - 1.0).abs() < 1e-9);
        // The same inputs give the same bits; a warm start keeps the signs.
        assert_eq!(comps, top_two(&c, d, None, 7, 1000, 1e-12));
        let flipped = [comps.axes[0].iter().map(|x| -x).collect(), comps.axes[1].clone()];
        let warm = top_two(&c, d, Some(&flipped), 7, 1000, 1e-12);
        assert!(dot(&warm.axes[0], &flipped[0]) > 0.999);
        assert!(warm.iterations <= comps.iterations);
    }

    #[test]
    fn covariance_from_integer_pairs_equals_the_dense_computation() {
        // Rows over 3 columns; missing votes are mean-imputed in the dense reference.
        let rows: Vec<Vec<(u32, i8)>> = vec![
            vec![(0, 1), (1, -1)],
            vec![(0, 1), (2, 0)],
            vec![(1, 1), (2, -1)],
            vec![(0, -1), (1, -1), (2, 1)],
        ];
        let mut cv = CoVotes::new(3);
        for r in &rows {
            cv.add_row(r);
        }
        let mean = cv.means();
        let c = cv.covariance(&mean);
        let dense: Vec<[f64; 3]> = rows
            .iter()
            .map(|r| {
                let mut x = [0.0; 3];
                for &(c, v) in r {
                    x[c as usize] = v as f64 - mean[c as usize];
                }
                x
            })
            .collect();
        for a in 0..3 {
            for b in 0..3 {
                let want: f64 = dense.iter().map(|x| x[a] * x[b]).sum::<f64>() / 4.0;
                assert!((c[a * 3 + b] - want).abs() < 1e-12, "{a},{b}: {} vs {want}", c[a * 3 + b]);
            }
        }
    }
}
