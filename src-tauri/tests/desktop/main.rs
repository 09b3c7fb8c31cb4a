//! Tests of the desktop shell without a window: commands through Tauri's mock
//! runtime against real caches and a real gateway on port 0, and the generated
//! TypeScript types.

mod commands;
mod generated;
mod profiles;
mod updates;
#[cfg(target_os = "linux")]
mod wake;
