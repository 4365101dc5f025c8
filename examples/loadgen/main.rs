//! A load generator: tracks N events through a tracker with one emitter per `--endpoint`,
//! then flushes, shuts down, and prints one JSON line of figures.
//!
//! ```text
//! cargo run --release --example loadgen -- --endpoint http://127.0.0.1:9090 --events 100000
//! ```
//!
//! Point it at any Snowplow collector (`cargo run --release --example collector` starts a
//! local one). Run with `--help` for every option; a flag not given leaves the library's
//! default. Exit code 0 when the run completed, even with drops; 2 for bad arguments,
//! including settings the library refuses when the tracker is built (an `ftp://`
//! endpoint, `--batch-size 0`); 1 when the run itself failed.

mod run;

#[actix_rt::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|arg| arg == "--help" || arg == "-h") {
        println!("{}", run::USAGE);
        return;
    }
    let options = match run::Options::parse(&args) {
        Ok(options) => options,
        Err(error) => {
            eprintln!("loadgen: {error}\n\n{}", run::USAGE);
            std::process::exit(2);
        }
    };
    match run::run(options).await {
        Ok(summary) => println!("{summary}"),
        Err(error @ run::RunError::Settings(_)) => {
            eprintln!("loadgen: {error}\n\n{}", run::USAGE);
            std::process::exit(error.exit_code());
        }
        Err(error) => {
            eprintln!("loadgen: {error}");
            std::process::exit(error.exit_code());
        }
    }
}
