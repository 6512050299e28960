//! The sweep as a PNG chart (plotters' bitmap backend): AED on scene within 4 minutes against
//! rescuers per 1 000, one line per AED density, with the 95 % intervals as bars.
//!
//! Text needs a font file and the binary carries none: a TrueType font is looked for at run
//! time (`AEDNET_FONT`, else DejaVu Sans or Noto Sans where distributions put them). Without
//! one the chart is drawn without text; the CSV carries every number.

use std::path::Path;

use plotters::prelude::*;

use super::sweep::SweepPoint;

const FONT_PATHS: [&str; 4] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf",
];

/// Registers a font once; whether text can be drawn.
fn font() -> bool {
    static FONT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *FONT.get_or_init(|| {
        let paths = std::env::var("AEDNET_FONT")
            .ok()
            .into_iter()
            .chain(FONT_PATHS.iter().map(|s| s.to_string()));
        for p in paths {
            if let Ok(bytes) = std::fs::read(&p) {
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return true;
                }
            }
        }
        false
    })
}

pub fn png(title: &str, points: &[SweepPoint], path: &Path) -> anyhow::Result<()> {
    let text = font();
    let root = BitMapBackend::new(path, (960, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
    draw(&root, title, points, text).map_err(|e| anyhow::anyhow!("chart: {e}"))?;
    root.present().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    points: &[SweepPoint],
    text: bool,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let x_max = points
        .iter()
        .map(|p| p.rescuers_per_1000)
        .fold(1.0, f64::max);
    let y_max = points
        .iter()
        .map(|p| p.aed4.hi * 100.0)
        .fold(5.0, f64::max)
        .min(100.0)
        * 1.1;
    let mut builder = ChartBuilder::on(root);
    builder.margin(20);
    if text {
        let caption = format!("AED on scene ≤ 4 min (aednet policy), {title}");
        // Long city lines (a database URL and how people were placed) shrink to fit the width.
        let size = (1700.0 / caption.chars().count() as f64).clamp(11.0, 22.0);
        builder
            .caption(caption, ("sans-serif", size))
            .x_label_area_size(45)
            .y_label_area_size(60);
    } else {
        builder.x_label_area_size(10).y_label_area_size(10);
    }
    let mut chart = builder.build_cartesian_2d(0.0..x_max * 1.05, 0.0..y_max)?;
    let mut mesh = chart.configure_mesh();
    if text {
        mesh.x_desc("registered rescuers per 1 000 people")
            .y_desc("% of arrests")
            .label_style(("sans-serif", 15));
    } else {
        mesh.disable_x_mesh()
            .disable_y_mesh()
            .x_labels(0)
            .y_labels(0);
    }
    mesh.draw()?;
    let mut densities: Vec<f64> = points.iter().map(|p| p.aeds_per_10k).collect();
    densities.sort_by(f64::total_cmp);
    densities.dedup_by(|a, b| (*a - *b).abs() < 1e-9);
    for (i, d) in densities.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let mut line: Vec<&SweepPoint> = points
            .iter()
            .filter(|p| (p.aeds_per_10k - d).abs() < 1e-9)
            .collect();
        line.sort_by(|a, b| a.rescuers_per_1000.total_cmp(&b.rescuers_per_1000));
        let series = chart.draw_series(LineSeries::new(
            line.iter()
                .map(|p| (p.rescuers_per_1000, p.aed4.mean * 100.0)),
            color.stroke_width(3),
        ))?;
        if text {
            series
                .label(format!("{d:.1} AEDs per 10 000"))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
                });
        }
        chart.draw_series(line.iter().map(|p| {
            PathElement::new(
                vec![
                    (p.rescuers_per_1000, p.aed4.lo * 100.0),
                    (p.rescuers_per_1000, p.aed4.hi * 100.0),
                ],
                color.stroke_width(1),
            )
        }))?;
        chart.draw_series(line.iter().map(|p| {
            Circle::new(
                (p.rescuers_per_1000, p.aed4.mean * 100.0),
                4,
                color.filled(),
            )
        }))?;
    }
    if text {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font(("sans-serif", 15))
            .draw()?;
    }
    Ok(())
}
