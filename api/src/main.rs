fn main() { eprintln!("api: not built yet (issue 5)"); std::process::exit(2); }
