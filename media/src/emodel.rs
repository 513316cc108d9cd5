//! MOS from the simplified ITU-T G.107 E-model (formats.md §4, anchors.md §5.1):
//! R = 93.2 − Id − Ie_eff; Id = 0.024·d + 0.11·(d − 177.3)·H(d − 177.3);
//! Ie_eff = Ie + (95 − Ie)·Ppl / (Ppl/BurstR + Bpl); MOS = 1 + 0.035R + 7·10⁻⁶·R(R − 60)(100 − R).

/// Equipment impairment of a codec (G.113 Appendix I values as cited in anchors.md §5.2).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Codec {
    pub ie: f64,
    pub bpl: f64,
}

/// G.711 with packet-loss concealment: Ie 0, Bpl 25.1.
pub const G711_PLC: Codec = Codec { ie: 0.0, bpl: 25.1 };
/// G.711 without packet-loss concealment: Ie 0, Bpl 4.3.
pub const G711_NO_PLC: Codec = Codec { ie: 0.0, bpl: 4.3 };
/// G.729A with VAD: Ie 11, Bpl 19.
pub const G729A_VAD: Codec = Codec { ie: 11.0, bpl: 19.0 };

/// Delay impairment for one-way delay `d_ms`.
pub fn id(d_ms: f64) -> f64 {
    0.024 * d_ms + if d_ms > 177.3 { 0.11 * (d_ms - 177.3) } else { 0.0 }
}

/// Effective equipment impairment for `loss_pct` percent loss.
pub fn ie_eff(codec: Codec, loss_pct: f64, burst_ratio: f64) -> f64 {
    let denom = loss_pct / burst_ratio + codec.bpl;
    if denom <= 0.0 {
        return codec.ie;
    }
    codec.ie + (95.0 - codec.ie) * loss_pct / denom
}

/// R factor.
pub fn r_factor(d_ms: f64, loss_pct: f64, codec: Codec, burst_ratio: f64) -> f64 {
    93.2 - id(d_ms) - ie_eff(codec, loss_pct, burst_ratio)
}

/// MOS of an R factor (G.107 Annex B), unclamped: 1 at R ≤ 0, 4.5 at R ≥ 100.
pub fn mos_of_r(r: f64) -> f64 {
    if r <= 0.0 {
        1.0
    } else if r >= 100.0 {
        4.5
    } else {
        1.0 + 0.035 * r + 7e-6 * r * (r - 60.0) * (100.0 - r)
    }
}

/// The MOS voicegw reports: one-way delay d = RTT/2 + 2·jitter + packetization time, clamped to
/// [1.0, 4.4] and rounded to two decimals.
pub fn reported_mos(
    rtt_ms: f64,
    jitter_ms: f64,
    ptime_ms: f64,
    loss_pct: f64,
    codec: Codec,
    burst_ratio: f64,
) -> f64 {
    let d = rtt_ms / 2.0 + 2.0 * jitter_ms + ptime_ms;
    let mos = mos_of_r(r_factor(d, loss_pct, codec, burst_ratio)).clamp(1.0, 4.4);
    (mos * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table printed by `../shared/reference/emodel_ref.py` (d ms, loss %, then R and MOS for
    /// G.711+PLC, G.711 without PLC, G.729A+VAD), regenerated here digit for digit.
    const REFERENCE: &str = "
   0  0.0 |  93.20 4.409 |  93.20 4.409 |  82.20 4.104
   0  1.0 |  89.56 4.328 |  75.28 3.834 |  78.00 3.946
   0  2.0 |  86.19 4.235 |  63.04 3.256 |  74.20 3.787
   0  5.0 |  77.42 3.923 |  42.12 2.169 |  64.70 3.340
   0 10.0 |  66.13 3.411 |  26.77 1.481 |  53.23 2.745
  50  0.0 |  92.00 4.385 |  92.00 4.385 |  81.00 4.061
  50  1.0 |  88.36 4.297 |  74.08 3.782 |  76.80 3.898
  50  2.0 |  84.99 4.198 |  61.84 3.195 |  73.00 3.734
  50  5.0 |  76.22 3.873 |  40.92 2.110 |  63.50 3.279
  50 10.0 |  64.93 3.351 |  25.57 1.436 |  52.03 2.682
 100  0.0 |  90.80 4.358 |  90.80 4.358 |  79.80 4.016
 100  1.0 |  87.16 4.263 |  72.88 3.729 |  75.60 3.847
 100  2.0 |  83.79 4.159 |  60.64 3.133 |  71.80 3.680
 100  5.0 |  75.02 3.823 |  39.72 2.051 |  62.30 3.218
 100 10.0 |  63.73 3.291 |  24.37 1.393 |  50.83 2.619
 150  0.0 |  89.60 4.329 |  89.60 4.329 |  78.60 3.970
 150  1.0 |  85.96 4.228 |  71.68 3.675 |  74.40 3.796
 150  2.0 |  82.59 4.118 |  59.44 3.071 |  70.60 3.625
 150  5.0 |  73.82 3.771 |  38.52 1.992 |  61.10 3.157
 150 10.0 |  62.53 3.230 |  23.17 1.352 |  49.63 2.556
 200  0.0 |  85.90 4.226 |  85.90 4.226 |  74.90 3.818
 200  1.0 |  82.26 4.107 |  67.98 3.501 |  70.70 3.630
 200  2.0 |  78.89 3.981 |  55.74 2.878 |  66.90 3.449
 200  5.0 |  70.12 3.603 |  34.83 1.819 |  57.40 2.965
 200 10.0 |  58.84 3.040 |  19.47 1.237 |  45.94 2.363
 300  0.0 |  72.50 3.712 |  72.50 3.712 |  61.50 3.178
 300  1.0 |  68.86 3.543 |  54.58 2.816 |  57.30 2.959
 300  2.0 |  65.49 3.379 |  42.34 2.180 |  53.50 2.759
 300  5.0 |  56.72 2.929 |  21.43 1.295 |  44.00 2.264
 300 10.0 |  45.44 2.338 |   6.07 0.997 |  32.54 1.717
";

    #[test]
    fn matches_the_reference_table() {
        let mut rows = 0;
        for line in REFERENCE.lines().filter(|l| !l.trim().is_empty()) {
            let nums: Vec<f64> = line
                .split(|c: char| c == '|' || c.is_whitespace())
                .filter_map(|t| t.parse().ok())
                .collect();
            let (d, p) = (nums[0], nums[1]);
            for (i, codec) in [G711_PLC, G711_NO_PLC, G729A_VAD].into_iter().enumerate() {
                let r = r_factor(d, p, codec, 1.0);
                let m = mos_of_r(r);
                assert_eq!(
                    format!("{r:.2}"),
                    format!("{:.2}", nums[2 + 2 * i]),
                    "R d={d} p={p} codec {i}"
                );
                assert_eq!(
                    format!("{m:.3}"),
                    format!("{:.3}", nums[3 + 2 * i]),
                    "MOS d={d} p={p} codec {i}"
                );
            }
            rows += 1;
        }
        assert_eq!(rows, 30);
        // The script's first line: "R=93.2 -> MOS 4.4093 ; R=100 -> 4.50".
        assert_eq!(format!("{:.4}", mos_of_r(93.2)), "4.4093");
        assert_eq!(format!("{:.2}", mos_of_r(100.0)), "4.50");
    }

    #[test]
    fn reported_mos_is_clamped_and_rounded() {
        assert_eq!(reported_mos(0.0, 0.0, 0.0, 0.0, G711_PLC, 1.0), 4.4);
        // d = 20/2 + 2·1 + 20 = 32 ms, 1 % loss: emodel_ref.emodel(32, 1) gives R 88.79, MOS 4.3083.
        assert_eq!(reported_mos(20.0, 1.0, 20.0, 1.0, G711_PLC, 1.0), 4.31);
        assert_eq!(reported_mos(2000.0, 0.0, 20.0, 50.0, G711_NO_PLC, 1.0), 1.0);
    }
}
