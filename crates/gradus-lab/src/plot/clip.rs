//! Clipping trajectories to the view box, so that a diverging run stays readable.

use crate::problem::{Point, ViewBox};

/// How many view spans away a point counts as far (see [`clip_segment`]).
const FAR: f64 = 1e9;

/// The part of segment `a -> b` inside `view` (Liang-Barsky), if any.
pub fn clip_segment(a: Point, b: Point, view: &ViewBox) -> Option<(Point, Point)> {
    let d = [b[0] - a[0], b[1] - a[1]];
    let (mut t0, mut t1) = (0.0f64, 1.0f64);
    let bounds = [
        (-d[0], a[0] - view.x[0]),
        (d[0], view.x[1] - a[0]),
        (-d[1], a[1] - view.y[0]),
        (d[1], view.y[1] - a[1]),
    ];
    for (p, q) in bounds {
        if p == 0.0 {
            if q < 0.0 {
                return None;
            }
        } else {
            let t = q / p;
            if p < 0.0 {
                t0 = t0.max(t);
            } else {
                t1 = t1.min(t);
            }
        }
    }
    if t0 > t1 || t0.is_nan() || t1.is_nan() {
        return None;
    }
    // Far from the box, rounding in `a + t d` can put a "clipped" point far outside it, or
    // make a segment between two distant points seem to cross it: such segments are dropped
    // and every result is clamped into the box.
    let far = |p: Point| p[0].abs().max(p[1].abs()) > FAR * view.span();
    if far(a) && far(b) {
        return None;
    }
    let at = |t: f64| {
        [
            (a[0] + t * d[0]).clamp(view.x[0], view.x[1]),
            (a[1] + t * d[1]).clamp(view.y[0], view.y[1]),
        ]
    };
    Some((at(t0), at(t1)))
}

/// The pieces of the polyline `points` inside `view`: a new piece starts wherever the line
/// re-enters the box. Non-finite points break the line.
pub fn clip_polyline(points: &[Point], view: &ViewBox) -> Vec<Vec<(f64, f64)>> {
    let mut pieces: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut current: Vec<(f64, f64)> = Vec::new();
    let finite = |p: &Point| p.iter().all(|v| v.is_finite());
    if points.len() == 1 && view.contains(points[0]) {
        return vec![vec![(points[0][0], points[0][1])]];
    }
    for w in points.windows(2) {
        let clipped = (finite(&w[0]) && finite(&w[1]))
            .then(|| clip_segment(w[0], w[1], view))
            .flatten();
        match clipped {
            Some((a, b)) => {
                let joined = current.last().is_some_and(|&(x, y)| x == a[0] && y == a[1]);
                if !joined && !current.is_empty() {
                    pieces.push(std::mem::take(&mut current));
                }
                if current.is_empty() {
                    current.push((a[0], a[1]));
                }
                current.push((b[0], b[1]));
            }
            None => {
                if !current.is_empty() {
                    pieces.push(std::mem::take(&mut current));
                }
            }
        }
    }
    if !current.is_empty() {
        pieces.push(current);
    }
    pieces
}

/// Splits a polyline where it turns back sharply (more than about 115 degrees, measured after
/// `to_unit` maps points into the unit square of the plot), dropping repeated points.
///
/// Wide lines in the PNG backend are polygons mitred at every joint; at a near reversal (an
/// oscillating run) the mitre becomes a long spike across the plot. Each split piece ends and
/// the next starts at the turning point, so the drawing is unchanged apart from the joint.
pub fn split_sharp_turns(
    points: &[(f64, f64)],
    to_unit: impl Fn((f64, f64)) -> (f64, f64),
) -> Vec<Vec<(f64, f64)>> {
    let mut pieces = Vec::new();
    let mut current: Vec<(f64, f64)> = Vec::new();
    let mut last_dir: Option<(f64, f64)> = None;
    for &p in points {
        let Some(&prev) = current.last() else {
            current.push(p);
            continue;
        };
        let (a, b) = (to_unit(prev), to_unit(p));
        let d = (b.0 - a.0, b.1 - a.1);
        let len = d.0.hypot(d.1);
        if len < 1e-4 {
            continue; // under a pixel: no direction
        }
        let dir = (d.0 / len, d.1 / len);
        if last_dir.is_some_and(|l| l.0 * dir.0 + l.1 * dir.1 < -0.4) {
            pieces.push(std::mem::replace(&mut current, vec![prev]));
        }
        current.push(p);
        last_dir = Some(dir);
    }
    if !current.is_empty() {
        pieces.push(current);
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    const VIEW: ViewBox = ViewBox::new(-1.0, 1.0, -1.0, 1.0);

    #[test]
    fn a_line_that_leaves_and_returns_is_split_at_the_edges() {
        let pieces = clip_polyline(&[[0.0, 0.0], [3.0, 0.0], [0.0, 0.5]], &VIEW);
        assert_eq!(pieces.len(), 2, "{pieces:?}");
        assert_eq!(pieces[0], vec![(0.0, 0.0), (1.0, 0.0)]);
        let (x, y) = pieces[1][0];
        assert!((x - 1.0).abs() < 1e-12 && (y - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(pieces[1][1], (0.0, 0.5));
    }

    #[test]
    fn a_reversal_splits_the_line_and_repeated_points_are_dropped() {
        let id = |p| p;
        let pieces = split_sharp_turns(
            &[
                (0.0, 0.0),
                (0.5, 0.0),
                (0.5, 0.0),
                (1.0, 0.0),
                (0.2, 0.05),
                (0.2, 0.3),
            ],
            id,
        );
        assert_eq!(
            pieces,
            vec![
                vec![(0.0, 0.0), (0.5, 0.0), (1.0, 0.0)],
                vec![(1.0, 0.0), (0.2, 0.05), (0.2, 0.3)]
            ]
        );
    }

    #[test]
    fn huge_and_non_finite_points_are_handled() {
        let pieces = clip_polyline(&[[0.0, 0.0], [1e300, 1e300], [f64::NAN, 0.0]], &VIEW);
        assert_eq!(pieces, vec![vec![(0.0, 0.0), (1.0, 1.0)]]);
        // Between two far points rounding would cross the box anywhere: dropped.
        assert!(clip_segment([-1e69, -3e68], [1e69, 3e68 + 1e53], &VIEW).is_none());
        for (a, b) in [([0.5, 0.5], [6e69, -1e69]), ([-1e20, 0.3], [0.2, 0.1])] {
            let (p, q) = clip_segment(a, b, &VIEW).unwrap();
            assert!(VIEW.contains(p) && VIEW.contains(q), "{p:?} {q:?}");
        }
        assert!(clip_segment([2.0, 2.0], [3.0, 5.0], &VIEW).is_none());
        assert!(clip_polyline(&[[5.0, 5.0]], &VIEW).is_empty());
    }
}
