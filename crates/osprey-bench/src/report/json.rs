//! JSON report files: written by `--json`, read back by `--compare`.

use std::path::Path;

use crate::error::{BenchError, Result};
use crate::report::{BenchReport, FORMAT};

pub fn write(path: &Path, report: &BenchReport) -> Result<()> {
    let text = serde_json::to_string_pretty(report).map_err(|e| BenchError::ReportFormat {
        path: path.to_path_buf(),
        source: e,
    })?;
    std::fs::write(path, text + "\n").map_err(|e| BenchError::io(path, e))
}

pub fn read(path: &Path) -> Result<BenchReport> {
    let text = std::fs::read_to_string(path).map_err(|e| BenchError::io(path, e))?;
    let report: BenchReport =
        serde_json::from_str(&text).map_err(|e| BenchError::ReportFormat {
            path: path.to_path_buf(),
            source: e,
        })?;
    if report.format != FORMAT {
        return Err(BenchError::invalid(
            path.display().to_string(),
            format!("report format {:?}, expected {FORMAT:?}", report.format),
        ));
    }
    Ok(report)
}
