//! Contour lines of a problem: the objective sampled on a grid, levels chosen from the
//! samples, and marching squares joined into polylines.

use std::collections::HashMap;

use crate::problem::{Problem, ViewBox};

/// The objective sampled on a regular grid over a view box.
#[derive(Debug, Clone)]
pub struct Grid {
    /// The `x` of each column.
    pub xs: Vec<f64>,
    /// The `y` of each row.
    pub ys: Vec<f64>,
    /// Values, row by row: `values[j * xs.len() + i]` is at `(xs[i], ys[j])`.
    pub values: Vec<f64>,
}

impl Grid {
    /// Samples `problem` on `nx x ny` points spanning `view` (`nx, ny >= 2`).
    pub fn sample(problem: &dyn Problem, view: &ViewBox, nx: usize, ny: usize) -> Self {
        let axis = |r: [f64; 2], n: usize| -> Vec<f64> {
            let n = n.max(2);
            (0..n)
                .map(|k| r[0] + (r[1] - r[0]) * k as f64 / (n - 1) as f64)
                .collect()
        };
        let xs = axis(view.x, nx);
        let ys = axis(view.y, ny);
        let values = ys
            .iter()
            .flat_map(|&y| xs.iter().map(move |&x| (x, y)))
            .map(|(x, y)| problem.value([x, y]))
            .collect();
        Grid { xs, ys, values }
    }

    fn at(&self, i: usize, j: usize) -> f64 {
        self.values[j * self.xs.len() + i]
    }
}

/// `count` contour levels: geometric in `f − f*` above the minimum value `f*` when it is known
/// (dense near the minimum, where the interesting motion is), else evenly spaced; between the
/// 1st and 98th percentiles of the sampled values.
pub fn levels(grid: &Grid, min_value: Option<f64>, count: usize) -> Vec<f64> {
    let base = min_value.unwrap_or(0.0);
    let mut v: Vec<f64> = grid
        .values
        .iter()
        .map(|f| f - base)
        .filter(|g| g.is_finite() && (min_value.is_none() || *g > 0.0))
        .collect();
    if v.len() < 2 || count == 0 {
        return Vec::new();
    }
    v.sort_by(f64::total_cmp);
    let quantile = |q: f64| v[((v.len() - 1) as f64 * q) as usize];
    let (lo, hi) = (quantile(0.01), quantile(0.98));
    if lo.partial_cmp(&hi) != Some(std::cmp::Ordering::Less) {
        return Vec::new();
    }
    let n = count.max(2);
    (0..n)
        .map(|k| k as f64 / (n - 1) as f64)
        .map(|t| match min_value {
            Some(_) => base + lo * (hi / lo).powf(t),
            None => lo + (hi - lo) * t,
        })
        .collect()
}

/// An edge of the grid: `(vertical, i, j)`; horizontal edges run from `(i, j)` to `(i + 1, j)`,
/// vertical ones from `(i, j)` to `(i, j + 1)`.
type Edge = (bool, usize, usize);

/// The contour of `grid` at `level`, as polylines of `(x, y)` points.
pub fn contour_lines(grid: &Grid, level: f64) -> Vec<Vec<(f64, f64)>> {
    let segments = cell_segments(grid, level);
    chain(grid, level, &segments)
}

fn cell_segments(grid: &Grid, level: f64) -> Vec<(Edge, Edge)> {
    let mut out = Vec::new();
    for j in 0..grid.ys.len() - 1 {
        for i in 0..grid.xs.len() - 1 {
            let corners = [
                grid.at(i, j),
                grid.at(i + 1, j),
                grid.at(i + 1, j + 1),
                grid.at(i, j + 1),
            ];
            if corners.iter().any(|v| !v.is_finite()) {
                continue;
            }
            let above = corners.map(|v| v >= level);
            // Edges in order: bottom, right, top, left; each between corners k and k + 1.
            let edges: [Edge; 4] = [
                (false, i, j),
                (true, i + 1, j),
                (false, i, j + 1),
                (true, i, j),
            ];
            let crossed: Vec<usize> = (0..4).filter(|&k| above[k] != above[(k + 1) % 4]).collect();
            match crossed.len() {
                2 => out.push((edges[crossed[0]], edges[crossed[1]])),
                4 => {
                    let centre = corners.iter().sum::<f64>() / 4.0 >= level;
                    if above[0] == centre {
                        // Corners 1 and 3 are cut off.
                        out.push((edges[0], edges[1]));
                        out.push((edges[2], edges[3]));
                    } else {
                        out.push((edges[3], edges[0]));
                        out.push((edges[1], edges[2]));
                    }
                }
                _ => {}
            }
        }
    }
    out
}

/// Where the contour crosses `edge`, by linear interpolation.
fn crossing(grid: &Grid, level: f64, (vertical, i, j): Edge) -> (f64, f64) {
    let (i1, j1) = if vertical { (i, j + 1) } else { (i + 1, j) };
    let (v0, v1) = (grid.at(i, j), grid.at(i1, j1));
    let t = if v1 == v0 {
        0.5
    } else {
        ((level - v0) / (v1 - v0)).clamp(0.0, 1.0)
    };
    let x = grid.xs[i] + t * (grid.xs[i1] - grid.xs[i]);
    let y = grid.ys[j] + t * (grid.ys[j1] - grid.ys[j]);
    (x, y)
}

/// Joins segments sharing an edge into polylines.
fn chain(grid: &Grid, level: f64, segments: &[(Edge, Edge)]) -> Vec<Vec<(f64, f64)>> {
    let mut at_edge: HashMap<Edge, Vec<usize>> = HashMap::new();
    for (k, (a, b)) in segments.iter().enumerate() {
        at_edge.entry(*a).or_default().push(k);
        at_edge.entry(*b).or_default().push(k);
    }
    let mut used = vec![false; segments.len()];
    let mut lines = Vec::new();
    for start in 0..segments.len() {
        if used[start] {
            continue;
        }
        used[start] = true;
        let (a, b) = segments[start];
        let mut forward = walk(b, &at_edge, segments, &mut used);
        let backward = walk(a, &at_edge, segments, &mut used);
        let mut edges: Vec<Edge> = backward.into_iter().rev().collect();
        edges.push(a);
        edges.push(b);
        edges.append(&mut forward);
        lines.push(edges.iter().map(|e| crossing(grid, level, *e)).collect());
    }
    lines
}

/// Follows unused segments from `edge`, returning the edges reached in order.
fn walk(
    mut edge: Edge,
    at_edge: &HashMap<Edge, Vec<usize>>,
    segments: &[(Edge, Edge)],
    used: &mut [bool],
) -> Vec<Edge> {
    let mut out = Vec::new();
    while let Some(&k) = at_edge
        .get(&edge)
        .and_then(|ks| ks.iter().find(|&&k| !used[k]))
    {
        used[k] = true;
        let (a, b) = segments[k];
        edge = if a == edge { b } else { a };
        out.push(edge);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::problems::quadratic::{Quadratic, QuadraticConfig};

    #[test]
    fn a_circle_is_one_closed_line_at_the_right_radius() {
        let bowl = Quadratic::new(QuadraticConfig {
            kappa: 1.0,
            angle: 0.0,
        });
        let grid = Grid::sample(&bowl, &ViewBox::new(-2.0, 2.0, -2.0, 2.0), 81, 81);
        let lines = contour_lines(&grid, 0.5); // x² + y² = 1
        assert_eq!(lines.len(), 1);
        let line = &lines[0];
        assert_eq!(line.first(), line.last(), "closed");
        for &(x, y) in line {
            assert!((x.hypot(y) - 1.0).abs() < 0.01, "({x}, {y})");
        }
    }

    #[test]
    fn levels_are_geometric_above_a_known_minimum() {
        let bowl = Quadratic::new(QuadraticConfig::default());
        let grid = Grid::sample(&bowl, &ViewBox::new(-2.0, 2.0, -2.0, 2.0), 41, 41);
        let l = levels(&grid, Some(0.0), 5);
        assert_eq!(l.len(), 5);
        let ratio = l[1] / l[0];
        for w in l.windows(2) {
            assert!((w[1] / w[0] - ratio).abs() < 1e-9 * ratio);
        }
        assert_eq!(levels(&grid, None, 5).len(), 5);
    }
}
