//! Photo processing: thumbnails for lists and phones, and metadata stripping for anything a
//! resident or the public sees (a photo's EXIF can carry the exact spot and the phone).

use std::io::Cursor;

use img_parts::{Bytes, DynImage, ImageEXIF, ImageICC};

/// Longest side of a thumbnail, in pixels.
pub const THUMB_SIZE: u32 = 320;

/// The photo without EXIF (location, device) and ICC metadata. Non-images pass unchanged.
pub fn strip_metadata(bytes: &[u8]) -> Vec<u8> {
    match DynImage::from_bytes(Bytes::copy_from_slice(bytes)) {
        Ok(Some(mut img)) => {
            img.set_exif(None);
            img.set_icc_profile(None);
            let mut out = Vec::with_capacity(bytes.len());
            match img.encoder().write_to(&mut out) {
                Ok(_) => out,
                Err(_) => bytes.to_vec(),
            }
        }
        _ => bytes.to_vec(),
    }
}

/// A JPEG thumbnail (no metadata: decoding drops it), or `None` when the content cannot be
/// decoded (HEIC, video, a damaged file).
pub fn thumbnail(bytes: &[u8]) -> Option<Vec<u8>> {
    let img = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .ok()?;
    // Refuse decompression bombs before decoding.
    let mut img = img;
    img.limits({
        let mut l = image::Limits::default();
        l.max_image_width = Some(20_000);
        l.max_image_height = Some(20_000);
        l.max_alloc = Some(256 * 1024 * 1024);
        l
    });
    let decoded = img.decode().ok()?;
    let thumb = decoded.thumbnail(THUMB_SIZE, THUMB_SIZE).to_rgb8();
    let mut out = Vec::new();
    let mut enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 80);
    enc.encode_image(&thumb).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg_with_exif() -> Vec<u8> {
        let img = image::RgbImage::from_fn(640, 480, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
        });
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new(&mut jpeg)
            .encode_image(&img)
            .unwrap();
        let mut parsed = img_parts::jpeg::Jpeg::from_bytes(Bytes::from(jpeg)).unwrap();
        // A minimal EXIF payload carrying a recognisable marker.
        parsed.set_exif(Some(Bytes::from_static(b"Exif\0\0MM\0*GPS-29.28N-120.05E")));
        let mut out = Vec::new();
        parsed.encoder().write_to(&mut out).unwrap();
        out
    }

    #[test]
    fn strips_exif_and_makes_thumbnails() {
        let photo = jpeg_with_exif();
        assert!(photo.windows(3).any(|w| w == b"GPS"));
        let clean = strip_metadata(&photo);
        assert!(!clean.windows(3).any(|w| w == b"GPS"), "EXIF removed");
        assert!(
            image::load_from_memory(&clean).is_ok(),
            "still a valid image"
        );
        let thumb = thumbnail(&photo).unwrap();
        let t = image::load_from_memory(&thumb).unwrap();
        assert_eq!((t.width(), t.height()), (320, 240));
        assert!(thumbnail(b"not an image").is_none());
        assert_eq!(strip_metadata(b"plain"), b"plain");
    }
}
