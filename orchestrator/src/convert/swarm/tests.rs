//! Conversions of small projects, loaded from YAML as `berth` loads them.
