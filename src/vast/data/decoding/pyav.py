"""PyAVDecoder: any file FFmpeg reads, frame ``i`` the ``i``-th frame FFmpeg's decoder outputs."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import av
import av.bitstream
import numpy as np
from av.video.reformatter import VideoReformatter

from vast.data.decoding import packets as packets_module  # looked up at call time: tests stand in for it
from vast.data.decoding.base import NO_FRAMES, BrokenVideoError, VideoDecoder, even_times
from vast.data.decoding.container import _open_container, _video_stream
from vast.data.decoding.frames import display_rotation, to_rgb, upright
from vast.data.decoding.packets import (
    _decode_packet,
    _decoding_stamp,
    _demux,
    _index_from_frames,
    _index_from_packets,
    _stamp,
    _stores_timestamps,
    _trusts_timestamps,
    _unpacked,
)
from vast.data.frame_index import FRAME_INDEX_CACHE, FrameIndex, FrameIndexCache

logger = logging.getLogger(__name__)

class PyAVDecoder(VideoDecoder):
    """Decoder for video files through PyAV (FFmpeg).

    Args:
        path: the video file.
        threads: decoder threads. 1 (default) decodes on the calling thread, the right choice inside
            DataLoader workers; N > 1 uses FFmpeg frame and slice threading with N threads; 0 lets
            FFmpeg pick one per core.
        exact: index every file by decoding it once, also one whose timestamps are trusted: frame
            ``i`` is then the command line's ``i``-th frame even in an MP4 with damage that only
            decoding shows, before a request has decoded it (see below). Slower to open.

    Frame ``i`` is the ``i``-th frame that FFmpeg's decoder outputs (as the ``ffmpeg`` command line
    with ``-fps_mode passthrough`` numbers them). Files whose container stores every frame's
    presentation timestamp (MP4, MOV, Matroska, WebM) are indexed from their packets alone; any
    other file (AVI, MPEG, ...) or one whose timestamps cannot be trusted is decoded once on
    opening to learn which frames the decoder outputs, in which order (see :func:`_trusts_timestamps`).
    A packet the decoder rejects on its headers is found on opening (:func:`_demux_index`); one that
    fails only in full decoding shows, when a request meets it, that the timestamps miscount the
    frames: the decoder then indexes the file by decoding it, and frames are numbered as FFmpeg
    outputs them from that request on (before it: ``exact``).

    ``num_decoded`` counts the frames decoded so far (to check that seeking avoids decoding all).
    """

    def __init__(self, path: str | os.PathLike, *, threads: int = 1, exact: bool = False) -> None:
        self.path = Path(path)
        self.threads = threads
        self.exact = exact
        self.num_decoded = 0
        self._damaged = False  # a packet did not decode
        self._reformatter = VideoReformatter()  # keeps its conversion context from frame to frame
        self._container = _open_container(self.path)
        self._at_start = True  # nothing read from the container yet: decoding from the start needs no reopening
        self._skipped = False  # the request being decoded told the decoder to drop a picture
        try:
            self._stream = _video_stream(self._container, self.path)
            self._configure_threads(self._stream)
            # May unwanted pictures be dropped undecoded: not with a decoder that cannot be told per
            # packet; else until opening or decoding shows that it does not do what it is told.
            self._skipping = packets_module._skips_per_packet(self._stream.codec_context)
            self._use_index(self._build_index())
        except BaseException:
            self._container.close()
            raise
        self._wanted_pts: set[int] = set()
        # Older PyAV exposes the rotation on the stream only; newer PyAV on frames only.
        self._stream_rotation = display_rotation(self._stream)

    @property
    def num_frames(self) -> int:
        return len(self._pts)

    @property
    def fps(self) -> float:
        rate = self._stream.average_rate or self._stream.guessed_rate or self._stream.base_rate
        if rate:
            return float(rate)
        duration = int(self._pts.max() - self._pts.min()) if self._index.named else 0
        if duration > 0 and self._stream.time_base:
            return float((len(self._pts) - 1) / (duration * self._stream.time_base))
        return 0.0

    @property
    def frame_times(self) -> np.ndarray:
        """From the index's timestamps when they name each frame in presentation order (the index
        holds them already: nothing is decoded); else (an AVI with B-frames, whose stamps are decoding
        times) evenly spaced at ``fps``."""
        stamps, time_base = self._pts, self._stream.time_base
        if self._index.named and time_base and len(stamps) > 1 and np.all(np.diff(stamps) > 0):
            return (stamps - stamps[0]).astype(np.float64) * float(time_base)
        return even_times(self.num_frames, self.fps)

    def close(self) -> None:
        self._container.close()

    def _configure_threads(self, stream: av.VideoStream) -> None:
        codec = stream.codec_context
        if self.threads == 1:
            codec.thread_count = 1
        else:
            codec.thread_type = "AUTO"
            codec.thread_count = max(self.threads, 0)

    def _use_index(self, index: FrameIndex) -> None:
        self._index = index
        self._pts = index.stamps
        self._pts_to_index = {int(p): i for i, p in enumerate(self._pts)} if index.named else {}

    def _build_index(self) -> FrameIndex:
        """The index by decoding kept from an earlier opening (:data:`FRAME_INDEX_CACHE`: the file is
        then neither demuxed nor decoded here); else from the packets when the container stores
        timestamps that can be trusted (found by demuxing); else built by decoding."""
        key = FrameIndexCache.key(self.path, self._stream.index)
        kept = FRAME_INDEX_CACHE.get(key)
        if kept is not None:
            return kept
        if self.exact or not _stores_timestamps(self._container):
            return self._index_by_decoding(key)
        packets = packets_module._demux_index(self._container, self._stream, self.path)
        self._at_start = False
        if not packets:
            raise BrokenVideoError(self.path, NO_FRAMES, "the video stream has no frames")
        if any(p.shown for p in packets):
            logger.debug("%s: %s ignores skip_frame, decoding every frame", self.path, self._stream.codec_context.name)
            self._stop_skipping()
        if _trusts_timestamps(self._stream, packets):
            return _index_from_packets(packets)
        logger.debug("%s: the container's timestamps do not say the frame order, decoding once", self.path)
        return self._index_by_decoding(key)

    def _index_by_decoding(self, key: tuple) -> FrameIndex:
        """The file's index by decoding, built and kept in :data:`FRAME_INDEX_CACHE` for the next
        opening (the caller has looked there)."""
        index = self._decode_index()
        FRAME_INDEX_CACHE.put(key, index)
        return index

    def _decode_index(self) -> FrameIndex:
        """Decode the file once, through a container of its own, and name each output frame."""
        with _open_container(self.path) as container:
            stream = container.streams[self._stream.index]
            stream.codec_context.thread_count = 1
            # Which frames come out and in which order does not depend on their pixels.
            stream.codec_context.options = {"skip_idct": "all", "skip_loop_filter": "all"}
            # MP4 and Matroska seek by pts (by dts, earlier by the reordering delay, a seek lands on
            # the keyframe before); AVI and MPEG streams by dts.
            seek_by = _stamp if _stores_timestamps(container) else _decoding_stamp
            key_packets: dict[int | None, int] = {}
            stamps, key_frames = [], []
            for packet in _unpacked(_demux(container, stream, self.path), stream):
                if packet.is_keyframe and packet.size:
                    key_packets[_stamp(packet)] = seek_by(packet)
                for frame in _decode_packet(packet, self.path) or ():
                    stamps.append(_stamp(frame))
                    key_frames.append(frame.key_frame)
        if not stamps:
            raise BrokenVideoError(self.path, NO_FRAMES, "no frame could be decoded")
        return _index_from_frames(stamps, key_frames, key_packets)

    def _keyframe_before(self, index: int) -> int:
        keyframes = self._index.keyframes
        return int(keyframes[np.searchsorted(keyframes, index, side="right") - 1])

    def _decode(self, wanted: np.ndarray) -> dict[int, np.ndarray]:
        out = self._decode_runs(wanted)
        if self._damaged and not self._index.by_decoding:
            logger.debug("%s: a packet does not decode, indexing the file by decoding it", self.path)
            self._use_index(self._index_by_decoding(FrameIndexCache.key(self.path, self._stream.index)))
            wanted = np.unique(np.minimum(wanted, self.num_frames - 1))
            out = self._decode_runs(wanted)
        if self._skipped and not out.keys() >= set(wanted.tolist()):
            # A wanted packet gave no frame while others were dropped: the decoder does not drop one
            # picture per packet told to (a truncated file lands here too, once: decoding every
            # frame is right for it as well).
            logger.debug("%s: skipping pictures lost a wanted frame, decoding every frame", self.path)
            self._stop_skipping()
            out = self._decode_runs(wanted)
        return out

    def _stop_skipping(self) -> None:
        """Decode every frame from now on, with a fresh decoder: one that was told to skip may keep
        the setting whatever it is told next (see :func:`_skips_per_packet`)."""
        self._skipping = False
        self._reopen()

    def _decode_runs(self, wanted: np.ndarray) -> dict[int, np.ndarray]:
        self._skipped = False
        wanted_set = {int(i) for i in wanted}
        self._wanted_pts = {int(self._pts[i]) for i in wanted_set}
        out: dict[int, np.ndarray] = {}
        frames: Iterator[tuple[int, av.VideoFrame]] | None = None
        position, last = -1, None  # index and frame last decoded
        for target in wanted.tolist():
            if target in out:
                continue
            key = self._keyframe_before(target)
            if frames is None or key > position:
                # Seeking beats decoding forward when the keyframe lies past where we are.
                frames = self._frames_from(key, target)
            for index, frame in frames:
                position, last = index, frame
                if index in wanted_set and index not in out:
                    out[index] = self._rgb(frame)
                if index >= target:
                    break
            else:
                # The file ran out of frames: keep the last one decoded, which the caller puts in
                # place of the wanted frames after it.
                if last is not None and position not in out:
                    out[position] = self._rgb(last)
                break
        return out

    def _rgb(self, frame: av.VideoFrame) -> np.ndarray:
        """``frame`` as upright RGB, as the ffmpeg command line shows it."""
        rotation = display_rotation(frame) or self._stream_rotation
        return upright(to_rgb(self._reformatter, frame, self.threads), rotation)

    def _frames_from(self, key: int, target: int) -> Iterator[tuple[int, av.VideoFrame]]:
        """Seek to keyframe ``key`` and yield ``(index, frame)`` from there on.

        The seek must land on that keyframe or one before it (the first frame decoded from ``key``
        on is ``key`` itself). If it fails, lands past it (a container with an imprecise index, a
        keyframe flag on a placeholder packet) or is followed by no frame at all, decode from the
        start of the file instead: slower, still right.
        """
        if self._index.by_decoding and (key == 0 or not self._index.named):
            yield from self._frames_after(self._restart(), -1)  # where counting frames is right
            return
        try:
            self._seek(int(self._index.seek_stamps[np.searchsorted(self._index.keyframes, key)]))
        except av.FFmpegError as exc:
            logger.debug("%s: seek failed (%s), decoding from the start", self.path, exc)
            yield from self._frames_after(self._restart(), -1)
            return
        landed = False
        for index, frame in self._frames_after(self._container, key - 1):
            if not landed and index != key:
                break
            landed = True
            yield index, frame
        if not landed:
            logger.debug("%s: seek to frame %d missed, decoding from the start", self.path, key)
            yield from self._frames_after(self._restart(), -1)

    def _seek(self, pts: int) -> None:
        self._at_start = False
        self._container.seek(pts, stream=self._stream, backward=True, any_frame=False)

    def _restart(self) -> av.container.InputContainer:
        """The container at the start of the file, with a fresh decoder (the one opened with the
        decoder while nothing has been read from it: an AVI whose index is kept is never demuxed
        on opening)."""
        if not self._at_start:
            self._reopen()
        self._at_start = False
        return self._container

    def _reopen(self) -> None:
        """Open the file again: the container at its start, with a fresh decoder."""
        self._container.close()
        self._container = _open_container(self.path)
        self._stream = _video_stream(self._container, self.path)
        self._configure_threads(self._stream)
        self._at_start = True

    def _frames_after(self, container: av.container.InputContainer, after: int) -> Iterator:
        """Decode forward, yielding ``(index, frame)`` for frames with index > ``after``.

        A frame is recognised by its timestamp; frames without a known one are counted (which is
        right from the start of the file). Packets FFmpeg cannot decode are passed over, as the
        ``ffmpeg`` command line does. Non-reference frames that are not wanted are dropped by the
        decoder without decoding them: no other frame needs them (with B-frames, often half the
        frames between sparse TSN picks). See :meth:`_may_skip` for when.
        """
        codec = self._stream.codec_context
        may_skip = self._may_skip()
        packets = _demux(container, self._stream, self.path)
        if self._index.by_decoding:  # as the index pass saw them, so that both number frames alike
            packets = _unpacked(packets, self._stream)
        last = after
        for packet in packets:
            if may_skip:
                keep = packet.pts is None or packet.pts in self._wanted_pts
                codec.skip_frame = "DEFAULT" if keep else "NONREF"
                self._skipped |= not keep
            frames = _decode_packet(packet, self.path)
            if frames is None:
                self._damaged = True
                continue
            for frame in frames:
                self.num_decoded += 1
                if self._skipped and _stamp(frame) not in self._pts_to_index:
                    # Counting frames on from the last is wrong once some were dropped: stop here,
                    # and the wanted frames missing make the request decode every frame.
                    return
                index = self._index_of(frame, last)
                if index is None or index <= after:
                    continue  # leading frames of an open GOP, before the keyframe we seeked to
                last = index
                yield index, frame

    def _may_skip(self) -> bool:
        """Whether a packet whose timestamp is not wanted may have its non-reference picture
        dropped undecoded.

        Right when each packet codes one picture and the frame decoded from it is named by that
        packet's timestamp, as FFmpeg's decoders name frames: the fast path's files, and files
        indexed by decoding once :func:`_unpacked` has moved DivX/Xvid packed B-frames (the one
        exception: a picture coded in one packet but decoded under the next one's timestamp) into
        packets of their own. Not when frames are counted rather than named (no timestamp to tell a
        wanted packet by), nor with frame threading, where the setting would reach packets already
        queued, nor with a decoder that cannot be told per packet (:func:`_skips_per_packet`: libdav1d,
        AV1's decoder), nor once the decoder was seen not to do what it is told: it output a picture
        while told to skip all on opening (:func:`_demux_index`), or a wanted frame did not come out
        (:meth:`_decode`).
        """
        return self.threads == 1 and self._index.named and self._skipping

    def _index_of(self, frame: av.VideoFrame, last: int) -> int | None:
        """A decoded frame's index, by its timestamp; without a known one, counted on from ``last``
        (right from the start of the file), or ``None`` when the index by decoding names every frame
        and never saw this one."""
        stamp = _stamp(frame)
        index = self._pts_to_index.get(stamp) if stamp is not None else None
        if index is None and not (self._index.by_decoding and self._index.named):
            index = last + 1
        return index
