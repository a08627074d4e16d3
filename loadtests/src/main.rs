//! Placeholder: the Goose load suite lands with its own issue.
fn main() {
    eprintln!("switchboard-load: not yet available (the load suite lands with its own issue)");
    std::process::exit(2);
}
