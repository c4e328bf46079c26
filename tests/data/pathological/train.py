print('never runs')
