//! The `--demo` simulator.
use std::sync::Arc;
use tokio::sync::watch;
use crate::{hub::Hub, DemoConfig};
/// Run the simulator until `stop`.
pub async fn run(_hub: Arc<Hub>, _cfg: DemoConfig, _stop: watch::Receiver<bool>) {}
