//! The lab's figures: `paths` (contours and trajectories), `loss` and `steps` (curves per step).
//!
//! Drawn with plotters; text in the PNG files is rasterized from the DejaVu Sans font shipped in
//! `assets/` (the `ab_glyph` backend), so rendering never depends on the system's fonts. Every
//! file is rendered in memory and written atomically. [`write_figure`] also renders the
//! runner's run-folder and `compare` charts: one renderer, one font file in the workspace.

pub mod clip;
pub mod contour;
pub mod curves;
pub mod paths;

use std::path::Path;
use std::sync::OnceLock;

use gradus_core::{Error, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

/// DejaVu Sans 2.37 (Bitstream Vera license, see `assets/DejaVuSans-LICENSE.txt`).
static FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

/// Distinct run colors (Tableau 10), in run order.
pub const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// The color of run `i`.
pub fn run_color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// A figure that can be drawn on any plotters backend.
pub trait Figure {
    /// Size in pixels (SVG view box and PNG image).
    fn size(&self) -> (u32, u32);

    /// Draws the figure on `root`.
    fn draw<DB: DrawingBackend>(
        &self,
        root: DrawingArea<DB, Shift>,
    ) -> std::result::Result<(), String>;
}

/// Renders `figure` to `<dir>/<stem>.svg` and `<dir>/<stem>.png`.
pub fn write_figure(dir: &Path, stem: &str, figure: &impl Figure) -> Result<()> {
    ensure_font();
    let (w, h) = figure.size();
    let svg_path = dir.join(format!("{stem}.svg"));
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
        figure.draw(root).map_err(|e| plot_error(&svg_path, e))?;
    }
    gradus_core::state_dict::write_atomically(&svg_path, svg.as_bytes())?;

    let png_path = dir.join(format!("{stem}.png"));
    let mut rgb = vec![0u8; w as usize * h as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
        figure.draw(root).map_err(|e| plot_error(&png_path, e))?;
    }
    let png = encode_png(&rgb, w, h).map_err(|e| plot_error(&png_path, e))?;
    gradus_core::state_dict::write_atomically(&png_path, &png)
}

fn plot_error(path: &Path, message: String) -> Error {
    Error::io(
        path,
        std::io::Error::other(format!("plotting failed: {message}")),
    )
}

/// Registers the shipped font once per process for the families plotters asks for.
fn ensure_font() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        for family in ["sans-serif", "serif", "monospace"] {
            // The font is compiled in and known to parse; a failure would only lose text.
            let _ = register_font(family, FontStyle::Normal, FONT);
        }
    });
}

fn encode_png(rgb: &[u8], w: u32, h: u32) -> std::result::Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, w, h);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(|e| e.to_string())?;
    writer.write_image_data(rgb).map_err(|e| e.to_string())?;
    writer.finish().map_err(|e| e.to_string())?;
    Ok(out)
}

/// Converts a plotters drawing error to text.
pub(crate) fn err<E: std::error::Error + Send + Sync>(e: DrawingAreaErrorKind<E>) -> String {
    e.to_string()
}
