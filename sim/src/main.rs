fn main() { eprintln!("sim: not built yet (issue 3)"); std::process::exit(2); }
