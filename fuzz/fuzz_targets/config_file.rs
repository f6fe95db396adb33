//! The TOML config file: `parse_file_config` and, when it parses, the validation `Config::load`
//! applies (connections included), with no flags or environment on top.

#![no_main]

use clap::Parser as _;
use hookgate::config::{parse_file_config, Cli, Config, ServeArgs};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(file) = parse_file_config(text) else {
        return;
    };
    let Ok(cli) = Cli::try_parse_from(["hookgate", "serve"]) else {
        return;
    };
    if let Err(error) = Config::from_file(file, &cli, &ServeArgs::default()) {
        let _ = format!("{error:#}");
    }
});
