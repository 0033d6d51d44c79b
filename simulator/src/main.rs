//! devicehub-sim: the device simulator and load generator (filled in by the simulator issue).

fn main() {
    println!(
        "devicehub-sim {}: no device profiles yet",
        env!("CARGO_PKG_VERSION")
    );
}
