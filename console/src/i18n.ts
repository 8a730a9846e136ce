import { createI18n } from 'vue-i18n'

const zh = {
  nav: { wall: '视频墙', alerts: '告警处置', map: '地图', health: '设备健康', zones: '区域与规则',
         search: '研判检索', analysis: '研判分析', system: '系统管理' },
  common: { logout: '退出', save: '保存', refresh: '刷新', all: '全部', none: '无', unavailable: '暂不可用',
            camera: '摄像机', area: '区域', type: '类型', severity: '等级', state: '状态', time: '时间' },
  login: { title: '登录', username: '用户名', password: '密码', submit: '登录', failed: '登录失败' },
  wall: { layout: '分屏', tree: '摄像机', groups: '分组', saveGroup: '保存为分组', overlay: '目标框',
          fallback: 'JPEG 回退（浏览器不支持该编码）', empty: '点击左侧摄像机放入此窗口', offline: '离线' },
  alerts: { live: '实时', detail: '告警详情', snapshot: '抓拍', annotated: '标注图', clip: '录像片段',
            trace: '规则依据', history: '处置记录', actions: '处置', reason: '误报原因',
            department: '部门', note: '备注', newAlert: '新告警' },
  actions: { acknowledge: '受理', dispatch: '分流', start: '处置中', resolve: '办结',
             false_alarm: '误报', reopen: '重新打开' },
  status: { new: '新告警', acknowledged: '已受理', dispatched: '已分流', in_progress: '处置中',
            resolved: '已办结', false_alarm: '误报' },
  severity: { low: '低', medium: '中', high: '高', critical: '紧急' },
  health: { online: '在线率', byArea: '按区域', byProgramme: '按工程', faulty: '离线/故障设备',
            lastError: '最近错误', fps: '分析帧率' },
  zones: { draw: '画多边形', line: '画线', clear: '清除', saved: '已保存并生效', rules: '规则' },
}

const en = {
  nav: { wall: 'Video wall', alerts: 'Alerts', map: 'Map', health: 'Camera health', zones: 'Zones & rules',
         search: 'Search', analysis: 'Analysis', system: 'System' },
  common: { logout: 'Log out', save: 'Save', refresh: 'Refresh', all: 'All', none: 'None',
            unavailable: 'Not available', camera: 'Camera', area: 'Area', type: 'Type',
            severity: 'Severity', state: 'State', time: 'Time' },
  login: { title: 'Log in', username: 'Username', password: 'Password', submit: 'Log in', failed: 'Login failed' },
  wall: { layout: 'Layout', tree: 'Cameras', groups: 'Groups', saveGroup: 'Save as group', overlay: 'Boxes',
          fallback: 'JPEG fallback (codec not playable here)', empty: 'Click a camera to show it here',
          offline: 'offline' },
  alerts: { live: 'Live', detail: 'Alert', snapshot: 'Snapshot', annotated: 'Annotated', clip: 'Clip',
            trace: 'Why it fired', history: 'History', actions: 'Actions', reason: 'Reason',
            department: 'Department', note: 'Note', newAlert: 'New alert' },
  actions: { acknowledge: 'Acknowledge', dispatch: 'Dispatch', start: 'In progress', resolve: 'Resolve',
             false_alarm: 'False alarm', reopen: 'Reopen' },
  status: { new: 'New', acknowledged: 'Acknowledged', dispatched: 'Dispatched', in_progress: 'In progress',
            resolved: 'Resolved', false_alarm: 'False alarm' },
  severity: { low: 'Low', medium: 'Medium', high: 'High', critical: 'Critical' },
  health: { online: 'Online rate', byArea: 'By area', byProgramme: 'By programme', faulty: 'Offline / faulty',
            lastError: 'Last error', fps: 'Analysed fps' },
  zones: { draw: 'Draw polygon', line: 'Draw line', clear: 'Clear', saved: 'Saved and applied', rules: 'Rules' },
}

export const i18n = createI18n({
  legacy: false,
  locale: localStorage.getItem('shaobing.locale') ?? 'zh-CN',
  fallbackLocale: 'zh-CN',
  messages: { 'zh-CN': zh, en },
})
