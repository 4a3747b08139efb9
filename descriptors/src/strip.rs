//! Strips a `FileDescriptorSet` of what neither JSON printing nor hashing reads. Used by
//! `build.rs` (through `#[path]`), so the binary embeds the lean set, and by the tests.

use prost::encoding::{decode_varint, encode_varint};

/// The descriptor set without its files' `source_code_info`. Everything else, extension options
/// included, is kept byte for byte. None if the set does not parse.
pub fn without_source_info(mut set: &[u8]) -> Option<Vec<u8>> {
    const FILE: u64 = (1 << 3) | 2; // FileDescriptorSet.file
    const SOURCE_CODE_INFO: u64 = 9; // FileDescriptorProto.source_code_info
    let mut out = Vec::with_capacity(set.len() / 4);
    while !set.is_empty() {
        if decode_varint(&mut set).ok()? != FILE {
            return None;
        }
        let mut file = len_delimited(&mut set)?;
        let mut kept = Vec::with_capacity(file.len());
        while !file.is_empty() {
            let field = file;
            let key = decode_varint(&mut file).ok()?;
            match key & 7 {
                0 => {
                    decode_varint(&mut file).ok()?;
                }
                1 => file = file.get(8..)?,
                2 => {
                    len_delimited(&mut file)?;
                }
                5 => file = file.get(4..)?,
                _ => return None,
            }
            if key >> 3 != SOURCE_CODE_INFO {
                kept.extend_from_slice(&field[..field.len() - file.len()]);
            }
        }
        encode_varint(FILE, &mut out);
        encode_varint(kept.len() as u64, &mut out);
        out.extend_from_slice(&kept);
    }
    Some(out)
}

fn len_delimited<'a>(buf: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len = usize::try_from(decode_varint(buf).ok()?).ok()?;
    if buf.len() < len {
        return None;
    }
    let (payload, rest) = buf.split_at(len);
    *buf = rest;
    Some(payload)
}
