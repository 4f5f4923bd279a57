//! Docker's words for a container's state; the engine holds them, shared with `berth ps`.

pub(super) use crate::engine::status_text::{state, status_line};
