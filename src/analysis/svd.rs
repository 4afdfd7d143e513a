//! Singular values by one-sided Jacobi (Hestenes 1958) in f64.
//!
//! One-sided Jacobi orthogonalises the columns of A by plane rotations; at convergence the
//! column norms are the singular values. It was chosen over bidiagonalisation because it is
//! short enough to check by eye and computes small singular values of graded matrices (the
//! Jacobian of a deep Gaussian net spans ten and more decades) to high relative accuracy
//! (Demmel & Veselić 1992).

use super::stack::Mat;

/// Sweeps after which the iteration stops even if some pair is not yet orthogonal to
/// working precision (in practice 6–12 suffice).
const MAX_SWEEPS: usize = 60;

/// Two columns count as orthogonal when |a·b| ≤ TOL·|a|·|b|.
const TOL: f64 = 1e-15;

/// The singular values of `a`, largest first (min(rows, cols) of them).
pub fn singular_values(a: &Mat) -> Vec<f64> {
    // Work on the rows of Aᵀ (A's columns) so every rotation touches contiguous memory; the
    // shorter side is the one rotated, so the count of values is min(rows, cols).
    let (count, len, mut vecs) = if a.rows >= a.cols {
        let mut t = vec![0.0; a.rows * a.cols];
        for i in 0..a.rows {
            for j in 0..a.cols {
                t[j * a.rows + i] = a.at(i, j);
            }
        }
        (a.cols, a.rows, t)
    } else {
        (a.rows, a.cols, a.data.clone())
    };
    let mut norms: Vec<f64> = (0..count)
        .map(|p| vecs[p * len..(p + 1) * len].iter().map(|v| v * v).sum())
        .collect();
    for _ in 0..MAX_SWEEPS {
        let mut rotated = false;
        for p in 0..count {
            for q in p + 1..count {
                let (alpha, beta) = (norms[p], norms[q]);
                if alpha == 0.0 || beta == 0.0 {
                    continue;
                }
                let (head, tail) = vecs.split_at_mut(q * len);
                let (vp, vq) = (&mut head[p * len..(p + 1) * len], &mut tail[..len]);
                let gamma: f64 = vp.iter().zip(vq.iter()).map(|(x, y)| x * y).sum();
                if gamma.abs() <= TOL * (alpha * beta).sqrt() {
                    continue;
                }
                rotated = true;
                // The rotation that zeroes the (p, q) entry of AᵀA (Golub & Van Loan §8.5).
                let zeta = (beta - alpha) / (2.0 * gamma);
                let t = zeta.signum() / (zeta.abs() + (1.0 + zeta * zeta).sqrt());
                let c = 1.0 / (1.0 + t * t).sqrt();
                let s = c * t;
                for (x, y) in vp.iter_mut().zip(vq.iter_mut()) {
                    let (xp, yq) = (*x, *y);
                    *x = c * xp - s * yq;
                    *y = s * xp + c * yq;
                }
                // Recomputed rather than updated (α − tγ), which would drift for small values.
                norms[p] = vp.iter().map(|v| v * v).sum();
                norms[q] = vq.iter().map(|v| v * v).sum();
            }
        }
        if !rotated {
            break;
        }
    }
    let mut values: Vec<f64> = norms.into_iter().map(f64::sqrt).collect();
    values.sort_by(|a, b| b.total_cmp(a));
    values
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mat(rows: usize, cols: usize, data: Vec<f64>) -> Mat {
        Mat { rows, cols, data }
    }

    fn matmul(a: &Mat, b: &Mat) -> Mat {
        let mut out = vec![0.0; a.rows * b.cols];
        for i in 0..a.rows {
            for k in 0..a.cols {
                for j in 0..b.cols {
                    out[i * b.cols + j] += a.at(i, k) * b.at(k, j);
                }
            }
        }
        mat(a.rows, b.cols, out)
    }

    /// A Householder reflection I − 2vvᵀ/|v|², orthogonal to rounding.
    fn reflection(v: &[f64]) -> Mat {
        let n = v.len();
        let norm2: f64 = v.iter().map(|x| x * x).sum();
        let mut m = Mat::identity(n);
        for i in 0..n {
            for j in 0..n {
                m.data[i * n + j] -= 2.0 * v[i] * v[j] / norm2;
            }
        }
        m
    }

    fn assert_relative(got: &[f64], want: &[f64], tol: f64) {
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() <= tol * w.abs(), "got {got:?}, want {want:?}");
        }
    }

    #[test]
    fn two_by_two_matches_closed_form() {
        // [[3, 0], [4, 5]]: AᵀA = [[25, 20], [20, 25]], eigenvalues 45 and 5.
        let values = singular_values(&mat(2, 2, vec![3.0, 0.0, 4.0, 5.0]));
        assert_relative(&values, &[45f64.sqrt(), 5f64.sqrt()], 1e-14);
    }

    #[test]
    fn known_decomposition_is_recovered_over_many_decades() {
        // A = U·diag(s)·Vᵀ with U and V products of reflections; s spans 12 decades.
        let n = 9;
        let s: Vec<f64> = (0..n).map(|i| 10f64.powf(-1.5 * i as f64)).collect();
        let u = matmul(
            &reflection(&(0..n).map(|i| (i as f64 + 1.0).sin()).collect::<Vec<_>>()),
            &reflection(
                &(0..n)
                    .map(|i| (i as f64 * 0.7).cos() + 0.3)
                    .collect::<Vec<_>>(),
            ),
        );
        let v = reflection(&(0..n).map(|i| 1.0 / (i as f64 + 1.5)).collect::<Vec<_>>());
        let mut us = u.clone();
        for row in us.data.chunks_mut(n) {
            row.iter_mut().zip(&s).for_each(|(x, s)| *x *= s);
        }
        let a = matmul(&us, &v);
        let values = singular_values(&a);
        // The matrix itself carries rounding of ~1e-16·s_max, so small values are relative to
        // that; the large ones are checked tightly.
        for (got, want) in values.iter().zip(&s) {
            let tol = 1e-13 * want + 1e-15;
            assert!((got - want).abs() <= tol, "{got} vs {want}");
        }
    }

    #[test]
    fn graded_matrix_keeps_relative_accuracy() {
        // Columns scaled over 30 decades (B·D with B well conditioned): one-sided Jacobi gets
        // every value to a few ulps relative, which squaring AᵀA could not.
        let b = reflection(&[1.0, 2.0, -1.0, 0.5]);
        let d = [1.0, 1e-10, 1e-20, 1e-30];
        let mut a = b.clone();
        for row in a.data.chunks_mut(4) {
            row.iter_mut().zip(&d).for_each(|(x, d)| *x *= d);
        }
        // B orthogonal: the singular values are exactly d.
        assert_relative(&singular_values(&a), &d, 1e-12);
    }

    #[test]
    fn rectangular_and_rank_deficient() {
        // Rank one: u vᵀ with |u| = 5, |v| = 13.
        let u = [3.0, 4.0];
        let v = [5.0, 12.0, 0.0];
        let a = mat(
            2,
            3,
            u.iter()
                .flat_map(|x| v.iter().map(move |y| x * y))
                .collect(),
        );
        let values = singular_values(&a);
        assert_eq!(values.len(), 2);
        assert!((values[0] - 65.0).abs() < 1e-12, "{values:?}");
        assert!(values[1] < 1e-12, "{values:?}");
        let tall = mat(3, 2, vec![1.0, 0.0, 0.0, 2.0, 0.0, 0.0]);
        assert_relative(&singular_values(&tall), &[2.0, 1.0], 1e-15);
        assert_eq!(singular_values(&mat(2, 2, vec![0.0; 4])), vec![0.0, 0.0]);
    }
}
