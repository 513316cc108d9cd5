//! The E-model against `../shared/reference/emodel_ref.py`, run live: every (delay, loss) row of
//! its table for the three codec profiles, R to 2 decimals and MOS to 3.

use std::process::Command;

use harness::{require, shared};
use media::emodel::{mos_of_r, r_factor, G711_NO_PLC, G711_PLC, G729A_VAD};

#[test]
fn matches_emodel_ref_py() {
    if harness::shared_corpus().is_none() {
        return;
    }
    if !require("python3") {
        return;
    }
    let out = Command::new("python3")
        .arg(shared().join("reference/emodel_ref.py"))
        .output()
        .expect("python3");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let mut rows = 0;
    for line in text
        .lines()
        .filter(|l| l.contains('|') && l.trim_start().starts_with(|c: char| c.is_ascii_digit()))
    {
        let nums: Vec<f64> = line
            .split(|c: char| c == '|' || c.is_whitespace())
            .filter_map(|t| t.parse().ok())
            .collect();
        assert_eq!(nums.len(), 8, "{line}");
        for (i, codec) in [G711_PLC, G711_NO_PLC, G729A_VAD].into_iter().enumerate() {
            let r = r_factor(nums[0], nums[1], codec, 1.0);
            assert_eq!(format!("{r:.2}"), format!("{:.2}", nums[2 + 2 * i]), "R: {line}");
            assert_eq!(
                format!("{:.3}", mos_of_r(r)),
                format!("{:.3}", nums[3 + 2 * i]),
                "MOS: {line}"
            );
        }
        rows += 1;
    }
    assert_eq!(rows, 30, "{text}");
    let first = text.lines().next().unwrap_or_default();
    assert_eq!(
        first,
        format!("R=93.2 -> MOS {:.4} ; R=100 -> {:.2}", mos_of_r(93.2), mos_of_r(100.0))
    );
}
