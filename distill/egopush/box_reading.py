"""Reading boxes from the role-layered depth image: each box's centre, its yaw up to a quarter turn,
and the anchor's quarter turn from its marker (the methods are described in ``distill.egopush.geometry``'s
docstring, where the estimate that uses them is)."""

from __future__ import annotations

import math

import torch

SIGHT = 0.085
"""The faces a camera sees of a 0.2 m cube lie this much nearer than its centre, on average (m)."""
PRIOR = 1.0
"""Row pairs' worth of weight that keeps a face-plane centre at the pixel mean's along a direction
no face fixes (one face seen)."""
SLIVER = 50
"""With ``centres="corners"`` or ``"top"``, a box that shows no side face (3 row pairs) and fewer pixels than
this counts as not seen: a sliver at the image's edge places it centimetres off."""
TOP_PAIRS = 3
"""With ``centres="top"``, a box that shows no side face is placed by its top face's edges where
its far edge gives this many pairs of neighbouring columns."""


def rotate(v: torch.Tensor, yaw: torch.Tensor) -> torch.Tensor:
    """``[..., 2]`` vectors turned by ``yaw`` ``[...]`` (broadcast)."""
    c, s = torch.cos(yaw), torch.sin(yaw)
    return torch.stack((c * v[..., 0] - s * v[..., 1], s * v[..., 0] + c * v[..., 1]), -1)


class BoxReader:
    """Box centres and yaws from role layers, for ``GeoKeypoints``.

    Args:
        tables: the camera's constant tables (``ray``, ``cam``, ``mat``, ``unit``), moved to the
            images' device on first use and shared with the caller.
        image_hw: the depth image's height and width.
        half: the cube's half-side (m).
        tan: the tangent of half the camera's field of view.
        centres: where a box's centre comes from (``GeoKeypoints``'s ``centres``).
    """

    def __init__(
        self, tables: dict[str, torch.Tensor], image_hw: tuple[int, int], half: float, tan: float, centres: str
    ) -> None:
        self.tables, self.hw, self.half, self.tan, self.centres = tables, tuple(image_hw), half, tan, centres
        self.top = 2 * half

    def _t(self, name: str, dev: torch.device) -> torch.Tensor:
        t = self.tables[name]
        if t.device != dev:  # the constant tables follow the images, once
            t = self.tables[name] = t.to(dev)
        return t

    def boxes(self, depth: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Role layers ``[N, 3, H*W]`` (m) -> robot-frame centres ``[N, 3, 2]``, whether each box is
        seen ``[N, 3]``, each box's yaw up to a quarter turn ``[N, 3]``, the anchor's yaw ``[N]`` (the
        marker tells the quarter turn) and whether that yaw is sure ``[N]``."""
        dev = depth.device
        cam = self._t("cam", dev)
        pts = cam + depth[..., None] * self._t("ray", dev)  # [N, 3, P, 3]
        on = depth > 0
        post = on & (pts[..., 2] > self.top + 0.005)  # the anchor's marker, above every box's top
        m = (on & ~post).float()
        mean = (m[..., None] * pts[..., :2]).sum(2) / m.sum(2, keepdim=True).clamp(min=1)
        sight = mean - cam[:2]
        centre = mean + SIGHT * sight / sight.norm(dim=-1, keepdim=True).clamp(min=1e-6)
        seen = m.sum(2) >= 2
        # Neighbouring pixels of an image row on a side face lie along the face: the box's yaw plus a
        # multiple of a quarter turn, averaged as an angle times four.
        grid = pts.view(*pts.shape[:2], *self.hw, 3)
        side = (on & (pts[..., 2] > 0.01) & (pts[..., 2] < self.top - 0.01)).view(*on.shape[:2], *self.hw)
        step = grid[..., 1:, :2] - grid[..., :-1, :2]  # [N, 3, H, W - 1, 2]
        pair = side[..., 1:] & side[..., :-1] & (step.norm(dim=-1) < 0.15)  # the same face
        theta = torch.atan2(step[..., 1], step[..., 0])
        c4 = (pair * torch.cos(4 * theta)).flatten(2).sum(2)
        s4 = (pair * torch.sin(4 * theta)).flatten(2).sum(2)
        yaw4 = torch.atan2(s4, c4) / 4
        faces = pair.flatten(2).sum(2) >= 3
        if self.centres in ("top", "corners"):  # a sliver at the image's edge shows no face: not placed
            seen = seen & (faces | (m.sum(2) >= SLIVER))
        if self.centres != "pixels":
            a, b, nface, single = self._planes(grid[..., :2], pair, theta, yaw4, cam[:2])
            eye = torch.eye(2, device=dev)
            planes = torch.linalg.solve(a + PRIOR * eye, b + PRIOR * centre)
            if self.centres in ("top", "corners"):
                # Along the one face seen, its silhouette's ends (picked around the plane solution).
                t = torch.stack((-nface[..., 1], nface[..., 0]), -1)  # along the face
                tt = single[..., None, None] * t[..., :, None] * t[..., None, :]
                on_img = on.view(*on.shape[:2], *self.hw)
                for c, n in self._corners(depth.view(*on_img.shape), grid, on_img, side, yaw4, nface, planes):
                    a = a + n[..., None, None] * tt
                    b = b + n[..., None] * (tt @ c[..., None])[..., 0]
                planes = torch.linalg.solve(a + PRIOR * eye, b + PRIOR * centre)
            centre = planes
        if self.centres == "top":  # no side face seen (the box being pushed): its top face's edges
            need = seen & ~faces
            rows = need.any(1).nonzero().squeeze(1)  # only the worlds that show such a box
            if rows.numel():
                on_img = on[rows].view(len(rows), on.shape[1], *self.hw)
                top, tyaw, edge = self._top(depth[rows].view(*on_img.shape), grid[rows], on_img, centre[rows])
                use = need[rows] & (edge >= TOP_PAIRS)
                centre, yaw4 = centre.clone(), yaw4.clone()
                centre[rows] = torch.where(use[..., None], top, centre[rows])
                yaw4[rows] = torch.where(use, tyaw, yaw4[rows])
        marker = post[:, 1]
        mxy = (marker[..., None] * pts[:, 1, :, :2]).sum(1) / marker.sum(1, keepdim=True).clamp(min=1)
        mxy = mxy + 0.02 * sight[:, 1] / sight[:, 1].norm(dim=-1, keepdim=True).clamp(min=1e-6)
        d = mxy - centre[:, 1]
        coarse = torch.atan2(d[:, 1], d[:, 0]) - math.pi / 2  # the marker is on the anchor's +y edge
        k = torch.round((coarse - yaw4[:, 1]) / (math.pi / 2))
        yaw = torch.where(faces[:, 1], yaw4[:, 1] + k * math.pi / 2, coarse)
        sure = seen[:, 1] & (marker.sum(1) >= 4) & (pair[:, 1].flatten(1).sum(1) >= 10)
        return centre, seen, yaw4, yaw, sure

    def _planes(
        self,
        grid: torch.Tensor,
        pair: torch.Tensor,
        theta: torch.Tensor,
        yaw4: torch.Tensor,
        cam: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        """The planes of the boxes' side faces, as least squares for the centres: a face's pixels
        fix the centre along its normal (``half`` behind the face), wherever the rest of the box is
        hidden or cut by the image's edge. Each row pair (``pair``, direction ``theta``) lies on the
        face whose direction it runs along (the box's x or y, from ``yaw4``), and of that face's two
        sides, on the one that faces the camera. Returns the normal equations ``a`` ``[N, 3, 2, 2]``
        and ``b`` ``[N, 3, 2]`` (two faces seen fix the centre; along a direction no face fixes,
        ``a`` is zero, for a prior to fill), the seen faces' mean normal ``[N, 3, 2]`` (toward the
        camera) and whether exactly one face is seen (3 row pairs or more) ``[N, 3]``."""
        mid = 0.5 * (grid[..., 1:, :] + grid[..., :-1, :])  # [N, 3, H, W - 1, 2]
        yaw = yaw4[..., None, None]
        along_x = torch.cos(2 * (theta - yaw)) > 0  # the face runs along the box's x: normal is its y
        phi = yaw + along_x * (math.pi / 2)
        n = torch.stack((torch.cos(phi), torch.sin(phi)), -1)
        n = torch.where((((mid - cam) * n).sum(-1) > 0)[..., None], -n, n)  # the side facing the camera
        w = pair.float()[..., None]
        a = (w[..., None] * n[..., :, None] * n[..., None, :]).flatten(2, 3).sum(2)  # [N, 3, 2, 2]
        b = (w * n * ((n * mid).sum(-1, keepdim=True) - self.half)).flatten(2, 3).sum(2)  # [N, 3, 2]
        nsum = (w * n).flatten(2, 3).sum(2)
        nface = nsum / nsum.norm(dim=-1, keepdim=True).clamp(min=1e-6)
        faces = ((pair & along_x).flatten(2).sum(2) >= 3).long() + ((pair & ~along_x).flatten(2).sum(2) >= 3).long()
        return a, b, nface, faces == 1

    def _top(
        self,
        depth: torch.Tensor,
        grid: torch.Tensor,
        on: torch.Tensor,
        prior: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        """Centres from the edges of the boxes' top faces, for a box that shows no side face (the
        one being pushed, its near faces below the image). In each image column, a box's topmost
        pixel, where it and the two below it are on the top face and the pixel above shows no nearer
        box of another layer, lies half a row inside the top face's far edge: neighbouring columns'
        points (moved half a row outward) give the edge's direction (the yaw up to a quarter turn)
        and fix the centre half a box nearer the camera, along the edge's normal. In each image row,
        a box's outermost pixel, where it is on the top face, not at the image's edge and not beside
        a nearer box, lies on a lateral edge (moved half a pixel outward): it fixes the centre half
        a box inward along the box's axis most nearly sideways in the image. Least squares, with
        ``prior`` ``[N, 3, 2]`` along a direction nothing fixes. Returns the centres ``[N, 3, 2]``,
        the yaws up to a quarter turn ``[N, 3]`` and the number of column pairs on the far edge
        ``[N, 3]``. ``depth`` ``[N, 3, H, W]``, ``grid`` its points ``[N, 3, H, W, 3]``, ``on``
        ``[N, 3, H, W]``."""
        N, L, H, W = depth.shape
        dev = depth.device
        cam = self._t("cam", dev)[:2]
        right = self._t("mat", dev)[:2, 0]  # the image's +u axis, robot frame
        layer = torch.arange(L, device=dev).view(1, L, 1)
        z = grid[..., 2]
        top = on & (z > self.top - 0.015) & (z < self.top + 0.005)
        row = torch.arange(H, device=dev).view(1, 1, H, 1)
        first = torch.where(on, row, H).amin(2)  # [N, 3, W]: each column's topmost row
        fr = first.clamp(0, H - 3)

        def at(t: torch.Tensor, r: torch.Tensor) -> torch.Tensor:  # row r [N, 3, W] of t [N, 3, H, W(, C)]
            if t.dim() == 4:
                return t.gather(2, r[:, :, None]).squeeze(2)
            return t.gather(2, r[:, :, None, :, None].expand(N, L, 1, W, t.shape[-1])).squeeze(2)

        ok = (first > 0) & (first < H - 2) & at(top, fr) & at(top, fr + 1) & at(top, fr + 2)
        here = at(depth, fr)
        above = (fr - 1).clamp(min=0)
        for i in range(L):  # another layer's nearer box just above: it hides the far edge
            nb = depth.gather(2, above[:, i, None, None].expand(N, L, 1, W)).squeeze(2)
            ok[:, i] &= ~((nb > 0) & (nb < here[:, i, None] + 0.02) & (layer != i)).any(1)
        q0, q1 = at(grid[..., :2], fr), at(grid[..., :2], fr + 1)
        q = q0 + 0.5 * (q0 - q1)  # half a row beyond the topmost pixel: on the edge
        step = q[..., 1:, :] - q[..., :-1, :]
        pair = ok[..., 1:] & ok[..., :-1] & (step.norm(dim=-1) < 0.05)
        theta = torch.atan2(step[..., 1], step[..., 0])
        c4, s4 = (pair * torch.cos(4 * theta)).sum(-1), (pair * torch.sin(4 * theta)).sum(-1)
        yaw4 = torch.atan2(s4, c4) / 4
        mid = 0.5 * (q[..., 1:, :] + q[..., :-1, :])
        phi = yaw4[..., None] + (torch.cos(2 * (theta - yaw4[..., None])) > 0) * (math.pi / 2)
        n = torch.stack((torch.cos(phi), torch.sin(phi)), -1)
        n = torch.where((((mid - cam) * n).sum(-1) < 0)[..., None], -n, n)  # away from the camera
        w = pair.float()[..., None]
        a = (w[..., None] * n[..., :, None] * n[..., None, :]).sum(2)
        b = (w * n * ((n * mid).sum(-1, keepdim=True) - self.half)).sum(2)
        quarter = torch.arange(4, device=dev) * (math.pi / 2)
        ang = yaw4[..., None] + quarter  # [N, 3, 4]: the box's four axes
        axes = torch.stack((torch.cos(ang), torch.sin(ang)), -1)
        for sign in (-1, 1):  # the left edge (toward column 0), then the right
            okr, p = self._row_ends(depth, grid, on, top, sign)
            k = (axes * (sign * right)).sum(-1).argmax(-1)  # the outward axis most nearly sideways
            nn = axes.gather(2, k[..., None, None].expand(N, L, 1, 2))[:, :, 0]  # [N, 3, 2]
            wr = okr.float()
            a = a + wr.sum(-1)[..., None, None] * nn[..., :, None] * nn[..., None, :]
            b = b + (wr[..., None] * nn[:, :, None] * ((nn[:, :, None] * p).sum(-1, keepdim=True) - self.half)).sum(2)
        eye = torch.eye(2, device=dev)
        return torch.linalg.solve(a + PRIOR * eye, b + PRIOR * prior), yaw4, pair.sum(-1)

    def _row_ends(
        self, depth: torch.Tensor, grid: torch.Tensor, on: torch.Tensor, kind: torch.Tensor, sign: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Each image row's outermost pixel of each box toward ``sign`` (-1: column 0, 1: the last),
        where it lies on the box's silhouette: it is of ``kind`` (``[N, 3, H, W]``: a side face's or
        the top face's pixel), not at the image's edge, and the pixel beyond shows no nearer box of
        another layer (that would hide the edge). Returns whether each row has one ``[N, 3, H]`` and
        its robot-frame point moved half a pixel outward ``[N, 3, H, 2]`` (the pixel's centre is
        inside the silhouette). ``depth`` ``[N, 3, H, W]``, ``grid`` its points ``[N, 3, H, W, 3]``."""
        N, L, H, W = depth.shape
        dev = depth.device
        col = torch.arange(W, device=dev)
        if sign < 0:
            end, end_kind = torch.where(on, col, W).amin(-1), torch.where(kind, col, W).amin(-1)
        else:
            end, end_kind = torch.where(on, col, -1).amax(-1), torch.where(kind, col, -1).amax(-1)
        ok = (end == end_kind) & (end >= 0) & (end < W) & (end + sign >= 0) & (end + sign < W)
        idx, beyond = end.clamp(0, W - 1), (end + sign).clamp(0, W - 1)
        here = depth.gather(-1, idx[..., None])[..., 0]
        layer = torch.arange(L, device=dev).view(1, L, 1)
        for i in range(L):
            nb = depth.gather(-1, beyond[:, i, None, :, None].expand(N, L, H, 1))[..., 0]
            ok[:, i] &= ~((nb > 0) & (nb < here[:, i, None] + 0.02) & (layer != i)).any(1)
        p = grid[..., :2].gather(3, idx[..., None, None].expand(N, L, H, 1, 2))[..., 0, :]
        right = self._t("mat", dev)[:2, 0]  # the image's +u axis, robot frame
        return ok, p + sign * (here * self.tan / W)[..., None] * right

    def _corners(
        self,
        depth: torch.Tensor,
        grid: torch.Tensor,
        on: torch.Tensor,
        side: torch.Tensor,
        yaw4: torch.Tensor,
        nface: torch.Tensor,
        centre: torch.Tensor,
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The centres the ends of a box's one seen face give, left end then right: ``[N, 3, 2]``
        each, with the number of image rows it rests on ``[N, 3]`` (0: none). In an image row, a
        box's outermost pixel is on its silhouette; where it is a side face's pixel, not at the
        image's edge, and the pixel beyond shows no nearer box of another layer, it lies on a
        vertical edge of the box: the end of the face seen (``nface``, toward the camera) toward
        that side, the one whose bearing from the camera around ``centre`` is outermost. Moved half
        a pixel outward (the pixel's centre is inside the silhouette); the centre is half a box in
        from it along both axes. ``depth`` ``[N, 3, H, W]``, ``grid`` its points ``[N, 3, H, W, 3]``,
        ``on`` and ``side`` (a side face's pixel) ``[N, 3, H, W]``."""
        N, L, H, W = depth.shape
        dev = depth.device
        cam = self._t("cam", dev)[:2]
        corner = rotate(self._t("unit", dev), yaw4[..., None])  # [N, 3, 4, 2]
        face = (corner * nface[:, :, None]).sum(-1) > 0  # the seen face's two corners
        cand = centre[:, :, None] + corner - cam
        bearing = torch.atan2(cand[..., 1], cand[..., 0])
        to_c = centre - cam
        rel = torch.remainder(bearing - torch.atan2(to_c[..., 1], to_c[..., 0])[..., None] + math.pi, 2 * math.pi)
        rel = rel - math.pi  # [N, 3, 4], positive to the left
        out = []
        for sign in (-1, 1):  # the left end (toward column 0), then the right
            ok, p = self._row_ends(depth, grid, on, side, sign)
            w = ok.float()
            n = w.sum(-1)
            point = (w[..., None] * p).sum(2) / n[..., None].clamp(min=1)
            pick = torch.where(face, -sign * rel, -math.inf).argmax(-1)  # [N, 3]
            offset = corner.gather(2, pick[..., None, None].expand(N, L, 1, 2))[:, :, 0]
            out.append((point - offset, n))
        return out
