//! The TOML config file: `parse_file_config` and, when it parses, the validation `Config::load`
//! applies (connections included), with no flags or environment on top.

#![no_main]

use hookgate::config::{parse_file_config, Config, GlobalArgs, ServeArgs};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(file) = parse_file_config(text) else {
        return;
    };
    if let Err(error) = Config::from_file(file, &GlobalArgs::default(), &ServeArgs::default()) {
        let _ = format!("{error:#}");
    }
});
