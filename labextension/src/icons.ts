/** The DLW icon, shared by the toolbar button, the jobs panel and the log tab. */

import { LabIcon } from '@jupyterlab/ui-components';

export const trainIcon = new LabIcon({
  name: 'dlw:train',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" width="16"><path class="jp-icon3" fill="#616161" d="M12 2 3 7v10l9 5 9-5V7zm0 2.3 6.6 3.7L12 11.7 5.4 8zM5 9.7l6 3.4v6.6l-6-3.4zm8 10v-6.6l6-3.4v6.6z"/></svg>'
});
