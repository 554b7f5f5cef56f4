// hls.js ships its light build without its own declaration: it is the same API, fewer features.
declare module 'hls.js/light' {
  import Hls from 'hls.js';
  export default Hls;
}
