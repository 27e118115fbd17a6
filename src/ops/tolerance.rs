//! Error budgets for comparing GPU results with the CPU reference, by NMSE
//! (Σ(gpu − ref)² / Σ ref², as llama.cpp's test-backend-ops), one place for all of them.

use crate::dtype::ComputeDType;

/// llama.cpp's gate for mul_mat: every matmul must pass it whatever its compute dtype.
pub const MUL_MAT_NMSE: f64 = 5e-4;

/// The tighter budget a matmul should meet for its compute dtype.
pub fn matmul_nmse(compute: ComputeDType) -> f64 {
    match compute {
        // f32 rounding is 6e-8 per operation; a K-term sum grows it by about √K (K ≤ 2^14:
        // relative error ≤ 1e-5, NMSE ≤ 1e-10); ×100 margin for unlucky cancellation.
        ComputeDType::F32 => 1e-8,
        // Each product rounds x and w·x to f16 (2^-11 relative each): per-term relative error
        // ≈ 7e-4, random in sign, so NMSE ≈ 5e-7; ×20 margin.
        ComputeDType::F16 => 1e-5,
        // Quantizing activations to int8 (relative step 1/254 of each block's max) is the
        // error; llama.cpp holds its q8_0 × q8_1 path to the mul_mat gate itself.
        ComputeDType::I8 => MUL_MAT_NMSE,
    }
}

/// NMSE of `got` against `want`; `None` when NaN/Inf do not sit at the same places (with the
/// same sign for infinities), which fails any budget.
pub fn nmse(got: &[f32], want: &[f32]) -> Option<f64> {
    if got.len() != want.len() {
        return None;
    }
    let mut err = 0.0f64;
    let mut norm = 0.0f64;
    for (&g, &w) in got.iter().zip(want) {
        if w.is_nan() || g.is_nan() || w.is_infinite() || g.is_infinite() {
            let same = (w.is_nan() && g.is_nan()) || (w.is_infinite() && g == w);
            if !same {
                return None;
            }
            continue;
        }
        err += (f64::from(g) - f64::from(w)).powi(2);
        norm += f64::from(w).powi(2);
    }
    Some(if norm == 0.0 { err } else { err / norm })
}

/// Index and size of the largest absolute difference, for failure messages.
pub fn max_abs_error(got: &[f32], want: &[f32]) -> (usize, f32) {
    got.iter()
        .zip(want)
        .enumerate()
        .map(|(i, (g, w))| (i, (g - w).abs()))
        .fold(
            (0, 0.0),
            |best, cur| if cur.1 > best.1 { cur } else { best },
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nmse_basics_and_nan_parity() {
        assert_eq!(nmse(&[1.0, 2.0], &[1.0, 2.0]), Some(0.0));
        assert!((nmse(&[1.1, 2.0], &[1.0, 2.0]).unwrap() - 0.01 / 5.0).abs() < 1e-9);
        assert_eq!(nmse(&[f32::NAN], &[1.0]), None);
        assert_eq!(nmse(&[f32::NAN, 1.0], &[f32::NAN, 1.0]), Some(0.0));
        assert_eq!(nmse(&[f32::INFINITY], &[f32::NEG_INFINITY]), None);
        assert_eq!(max_abs_error(&[1.0, 5.0], &[1.0, 2.0]), (1, 3.0));
    }
}
