//! Decodes one compressed file once, for instruction counts under callgrind (the figures in
//! `pvboot::compress`'s docs): `decompress_cost FORMAT FILE SIZE MODE`, where SIZE is the decoded
//! size and MODE is `into` (decompress_into), `stream` (decompress into a SliceSink) or `none`
//! (only reads the file and allocates the output: the baseline to subtract).
use pvboot::compress::{decompress, decompress_into, Compression, SliceSink};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 5 {
        eprintln!("usage: decompress_cost FORMAT FILE SIZE into|stream|none");
        std::process::exit(2);
    }
    let c = Compression::ALL.into_iter().find(|c| c.name() == args[1]).expect("FORMAT: gzip, xz, zstd, bzip2, lz4, lzo or lzma");
    let input = std::fs::read(&args[2]).expect("FILE");
    let size: usize = args[3].parse().expect("SIZE");
    let mut out = vec![0u8; size];
    let n = match args[4].as_str() {
        "into" => decompress_into(c, &input, &mut out).unwrap_or_else(|e| panic!("{e}")),
        "stream" => {
            let mut sink = SliceSink::new(&mut out);
            decompress(c, &input, &mut sink, size as u64).unwrap_or_else(|e| panic!("{e}")) as usize
        }
        _ => 0,
    };
    println!("{n}");
}
