//! `pulse-gateway`: the Pulse reference server (see `pulse_gateway::cli`).

fn main() -> std::process::ExitCode {
    pulse_gateway::cli::main()
}
