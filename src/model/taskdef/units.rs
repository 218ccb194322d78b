//! The task-level `cpu` and `memory` strings of the ECS API.
//!
//! `cpu` is CPU units ("256", 1024 units = 1 vCPU) or vCPU ("0.25 vCPU", "1 vcpu"); `memory` is
//! MiB ("512") or GB ("1 GB", "1GB", "0.5 gb"). Results are what ACS carries: vCPU and MiB.

/// Task CPU in vCPU.
pub(super) fn parse_cpu(text: &str) -> Result<f64, String> {
    let text = text.trim();
    let vcpu = match strip_unit(text, "vcpu") {
        Some(number) => positive(number)?,
        None => whole(text)? as f64 / 1024.0,
    };
    if vcpu <= 0.0 {
        return Err(format!("{text:?} must be more than 0"));
    }
    Ok(vcpu)
}

/// Task memory in MiB.
pub(super) fn parse_memory(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let mib = match strip_unit(text, "gb") {
        Some(number) => gb_to_mib(number)?,
        None => whole(text)?,
    };
    if mib <= 0 {
        return Err(format!("{text:?} must be more than 0"));
    }
    Ok(mib)
}

/// The number before a case-insensitive unit suffix, with or without a space.
fn strip_unit<'t>(text: &'t str, unit: &str) -> Option<&'t str> {
    let split = text.len().checked_sub(unit.len())?;
    let (number, suffix) = (text.get(..split)?, text.get(split..)?);
    suffix.eq_ignore_ascii_case(unit).then(|| number.trim_end())
}

fn whole(text: &str) -> Result<i64, String> {
    text.parse::<u32>()
        .map(i64::from)
        .map_err(|_| format!("{text:?} is not a whole number or a number with a unit"))
}

fn positive(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(n) if n.is_finite() && n > 0.0 => Ok(n),
        _ => Err(format!("{text:?} is not a positive number")),
    }
}

fn gb_to_mib(number: &str) -> Result<i64, String> {
    let mib = positive(number)? * 1024.0;
    if mib.fract() != 0.0 || mib > f64::from(i32::MAX) {
        return Err(format!("{number} GB is not a whole number of MiB"));
    }
    Ok(mib as i64)
}
