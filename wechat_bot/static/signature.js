/* Handwritten signature pad: draws with finger, pen or mouse on a transparent canvas and puts the
   PNG (data URL) into the form's hidden "signature" field on submit. No dependencies. */
(function () {
  "use strict";
  var canvas = document.getElementById("sigpad");
  if (!canvas) { return; }
  var form = canvas.closest("form");
  var field = form.querySelector("input[name=signature]");
  var hint = document.getElementById("sigpad-hint");
  var error = document.getElementById("sigpad-error");
  var ctx = canvas.getContext("2d");
  var drawing = false, strokes = 0, last = null;

  function setup() {
    var ratio = Math.min(window.devicePixelRatio || 1, 2);
    var rect = canvas.getBoundingClientRect();
    canvas.width = Math.round(rect.width * ratio);
    canvas.height = Math.round(rect.height * ratio);
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.lineWidth = 3; ctx.lineCap = "round"; ctx.lineJoin = "round"; ctx.strokeStyle = "#111";
    strokes = 0; field.value = "";
    if (hint) { hint.style.display = ""; }
  }
  function point(e) {
    var rect = canvas.getBoundingClientRect();
    var src = e.touches && e.touches.length ? e.touches[0] : e;
    return { x: src.clientX - rect.left, y: src.clientY - rect.top };
  }
  function start(e) {
    e.preventDefault(); drawing = true; last = point(e);
    ctx.beginPath(); ctx.arc(last.x, last.y, 1.5, 0, Math.PI * 2); ctx.fillStyle = "#111"; ctx.fill();
    if (hint) { hint.style.display = "none"; }
    if (error) { error.textContent = ""; }
  }
  function move(e) {
    if (!drawing) { return; }
    e.preventDefault();
    var p = point(e);
    ctx.beginPath(); ctx.moveTo(last.x, last.y); ctx.lineTo(p.x, p.y); ctx.stroke();
    last = p;
  }
  function end() { if (drawing) { strokes += 1; } drawing = false; }

  if (window.PointerEvent) {
    canvas.addEventListener("pointerdown", function (e) { canvas.setPointerCapture(e.pointerId); start(e); });
    canvas.addEventListener("pointermove", move);
    canvas.addEventListener("pointerup", end);
    canvas.addEventListener("pointercancel", end);
  } else {
    canvas.addEventListener("touchstart", start, { passive: false });
    canvas.addEventListener("touchmove", move, { passive: false });
    canvas.addEventListener("touchend", end);
    canvas.addEventListener("mousedown", start);
    window.addEventListener("mousemove", move);
    window.addEventListener("mouseup", end);
  }
  document.getElementById("sigpad-clear").addEventListener("click", function () {
    ctx.clearRect(0, 0, canvas.width, canvas.height); setup();
  });
  form.addEventListener("submit", function (e) {
    if (strokes === 0) {
      e.preventDefault();
      if (error) { error.textContent = "请先在签名区域手写您的姓名"; }
      return;
    }
    field.value = canvas.toDataURL("image/png");
  });
  setup();
})();
